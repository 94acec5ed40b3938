using System.Diagnostics;
using System.IO.Compression;
using RayClient.Interactive.Tests.Infrastructure;

namespace RayClient.Interactive.Tests;

/// <summary>The sample .csx scripts, run on Roslyn scripting with #r "nuget:" from the packed feed, against a server process.</summary>
[Collection(PackedFeedCollection.Name)]
public sealed class ScriptTests(PackedFeed feed) : IAsyncLifetime
{
    private Process? _server;
    private string _address = "";

    public async Task InitializeAsync()
    {
        // The embedded server as a script user runs it: a separate process (the one RayClient.Interactive ships).
        var host = Path.Combine(feed.Root, "server-host");
        if (!Directory.Exists(host))
        {
            using var zip = ZipFile.OpenRead(feed.PackagePath("RayClient.Interactive"));
            foreach (var entry in zip.Entries.Where(e => e.FullName.StartsWith("server/", StringComparison.Ordinal) && e.Name.Length > 0))
            {
                var target = Path.Combine(host, entry.FullName["server/".Length..]);
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                entry.ExtractToFile(target);
            }
        }

        _server = Process.Start(ProcessRunner.StartInfo("dotnet", [Path.Combine(host, "RayClient.Interactive.ServerHost.dll")], host))!;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (await _server.StandardOutput.ReadLineAsync(deadline.Token) is { } line)
        {
            if (line.StartsWith("RAYCLIENT_SERVER_ADDRESS ", StringComparison.Ordinal))
            {
                _address = line["RAYCLIENT_SERVER_ADDRESS ".Length..].Trim();
                return;
            }
        }

        throw new InvalidOperationException("the server host exited: " + await _server.StandardError.ReadToEndAsync());
    }

    public async Task DisposeAsync()
    {
        if (_server is { } server)
        {
            server.StandardInput.Close(); // the host stops when its stdin closes
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await server.WaitForExitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                server.Kill(entireProcessTree: true);
            }

            server.Dispose();
        }
    }

    [Fact]
    public async Task HelloScript_NugetReferenceFromFeed_ConnectsCallsAndPrints()
    {
        var path = Path.Combine(feed.RepoRoot, "samples", "scripts", "hello.csx");
        Assert.StartsWith($"#r \"nuget: RayClient, {feed.Version}\"", await File.ReadAllTextAsync(path));

        var (_, output) = await new ScriptRunner(feed).RunAsync(path, [_address]);

        Assert.Contains("factorial(12) = 479001600", output);
        Assert.Contains($"CPUs: {Environment.ProcessorCount}", output);
    }

    [Fact]
    public async Task SessionScript_RefsShownWithoutAwait_ValuesAwaited_SessionClosed()
    {
        var path = Path.Combine(feed.RepoRoot, "samples", "scripts", "session.csx");

        var (_, output) = await new ScriptRunner(feed).RunAsync(path, [_address]);

        Assert.Contains("ObjectRef(", output);
        Assert.Contains("1024", output);
        Assert.Contains("powers of 3: 1, 3, 9, 27, 81", output);
        Assert.Contains("state: Connected", output);
        Assert.Contains("state: Closed", output);
    }
}
