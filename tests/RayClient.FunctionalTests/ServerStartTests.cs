using System.Net;
using System.Net.Sockets;
using System.Text;
using RayClient.Server;

namespace RayClient.FunctionalTests;

/// <summary>
/// A server that cannot start leaves nothing behind: no listener, no work directory, no process,
/// and says which port it could not take.
/// </summary>
public sealed class ServerStartTests : IDisposable
{
    /// <summary>This test's own root for the server's work directories, so nothing else's lands in it.</summary>
    private readonly string _root = Path.Combine(Path.GetTempPath(), "rayclient-start-tests", Guid.NewGuid().ToString("N"));

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task StartAsync_PortTaken_ThrowsNamingThePort_AndLeavesNothingBehind(bool dashboard)
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var options = new LocalRayServerOptions { NumCpus = 1, WorkDirectoryRoot = _root };
        if (dashboard)
        {
            options.DashboardPort = port;
        }
        else
        {
            options.Port = port;
        }

        var error = await Assert.ThrowsAsync<LocalRayServerListenException>(() => LocalRayServer.StartAsync(options));

        Assert.Equal(port, error.Port);
        Assert.Contains($"127.0.0.1:{port}", error.Message, StringComparison.Ordinal);
        Assert.Contains(dashboard ? "DashboardPort" : "LocalRayServerOptions.Port", error.Message, StringComparison.Ordinal);
        Assert.Contains("already in use", error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.Exists(_root) ? Directory.GetFileSystemEntries(_root) : []);
        Assert.Empty(ProcessesMentioning(_root));

        // Nothing of the failed start holds the port it did take: a server starts on it now.
        taken.Stop();
        await using var server = await LocalRayServer.StartAsync(options);
        Assert.Equal(port, dashboard ? server.DashboardPort : server.Port);
    }

    /// <summary>Live processes whose command line names <paramref name="path"/> (the workers run scripts from the work directory).</summary>
    private static List<int> ProcessesMentioning(string path)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                if (Encoding.UTF8.GetString(File.ReadAllBytes(Path.Combine(dir, "cmdline"))).Contains(path, StringComparison.Ordinal))
                {
                    found.Add(pid);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // The process ended while we looked.
            }
        }

        return found;
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }
}
