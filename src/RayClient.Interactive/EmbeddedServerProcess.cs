using System.Diagnostics;
using System.Globalization;

namespace RayClient.Interactive;

/// <summary>
/// The embedded server as a child process of the kernel (kernel hosts run on Microsoft.NETCore.App
/// only and cannot load the ASP.NET Core framework the server needs in-process). The child stops
/// when its standard input closes, so it goes when the kernel goes, even if the kernel is killed.
/// </summary>
internal sealed class EmbeddedServerProcess : IAsyncDisposable
{
    private const string AddressPrefix = "RAYCLIENT_SERVER_ADDRESS ";
    private readonly Process _process;

    private EmbeddedServerProcess(Process process, string address)
    {
        _process = process;
        Address = address;
    }

    public string Address { get; }

    public int ProcessId => _process.Id;

    /// <summary>The published server host: server/ of the RayClient.Interactive package, next to this assembly's lib folder.</summary>
    public static string FindHost()
    {
        var overridePath = Environment.GetEnvironmentVariable("RAYCLIENT_SERVER_HOST");
        if (!string.IsNullOrEmpty(overridePath))
        {
            return overridePath;
        }

        var here = Path.GetDirectoryName(typeof(EmbeddedServerProcess).Assembly.Location) ?? AppContext.BaseDirectory;
        // <package>/lib/net10.0/RayClient.Interactive.dll -> <package>/server/
        var candidates = new[]
        {
            Path.Combine(here, "..", "..", "server", "RayClient.Interactive.ServerHost.dll"),
            Path.Combine(here, "RayClient.Interactive.ServerHost.dll"),
        };
        return candidates.Select(Path.GetFullPath).FirstOrDefault(File.Exists)
            ?? throw new FileNotFoundException(
                "The embedded server host (server/RayClient.Interactive.ServerHost.dll of the RayClient.Interactive package) was not found; "
                + "connect to a running server with #!ray connect ray://host:10001 instead, or set RAYCLIENT_SERVER_HOST.", candidates[0]);
    }

    public static async Task<EmbeddedServerProcess> StartAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var host = FindHost();
        var info = new ProcessStartInfo(DotnetExecutable())
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(host);
        info.ArgumentList.Add("--port");
        info.ArgumentList.Add("0");
        var process = Process.Start(info) ?? throw new InvalidOperationException("Could not start " + info.FileName);
        var stderr = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (stderr)
                {
                    stderr.AppendLine(e.Data);
                }
            }
        };
        process.BeginErrorReadLine();
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            while (true)
            {
                var line = await process.StandardOutput.ReadLineAsync(deadline.Token).ConfigureAwait(false);
                if (line is null)
                {
                    await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
                    string error;
                    lock (stderr)
                    {
                        error = stderr.ToString();
                    }

                    throw new InvalidOperationException(string.Format(CultureInfo.InvariantCulture,
                        "The embedded server exited with code {0} before listening: {1}", process.ExitCode, error.Trim()));
                }

                if (line.StartsWith(AddressPrefix, StringComparison.Ordinal))
                {
                    // Keep draining its stdout so it never blocks on a full pipe.
                    _ = process.StandardOutput.BaseStream.CopyToAsync(Stream.Null, CancellationToken.None);
                    return new EmbeddedServerProcess(process, line[AddressPrefix.Length..].Trim());
                }
            }
        }
        catch
        {
            Kill(process);
            process.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.StandardInput.Close(); // the host stops when its stdin closes
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            Kill(_process);
        }
        finally
        {
            _process.Dispose();
        }
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
    }

    private static string DotnetExecutable()
    {
        var hostPath = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(hostPath) && File.Exists(hostPath))
        {
            return hostPath;
        }

        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            return self;
        }

        return "dotnet";
    }
}
