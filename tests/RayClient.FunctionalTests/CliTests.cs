using System.Diagnostics;
using RayClient.Cli;

namespace RayClient.FunctionalTests;

public sealed class CliTests
{
    [Fact]
    public async Task Demo_OnTheEmbeddedServer_PrintsNodesCpusAndResults()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await CliApp.BuildRootCommand(output, error).Parse(["demo"]).InvokeAsync();

        var text = output.ToString();
        Assert.True(exit == 0, $"exit {exit}: {error}");
        var cpus = Environment.ProcessorCount;
        Assert.Contains("Nodes in the Ray cluster: 1", text);
        Assert.Contains($"CPUs in the Ray cluster: {cpus}", text);
        Assert.Contains($"[{string.Join(", ", Enumerable.Repeat("10", cpus))}]", text);
    }

    [Fact]
    public async Task Demo_UnreachableAddress_FailsWithAClearMessage()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await CliApp.BuildRootCommand(output, error).Parse(["demo", "--address", "ray://127.0.0.1:1", "--connect-deadline", "2"]).InvokeAsync();

        Assert.Equal(1, exit);
        Assert.Contains("connection refused", error.ToString());
    }

    [Theory]
    [InlineData("http://127.0.0.1:8265", "ray://<head-node>:10001")]
    [InlineData("ray://", "ray://<head-node>:10001")]
    [InlineData("ray://127.0.0.1:99999", "not a TCP port")]
    public async Task Demo_BadAddress_PrintsOneErrorLineAndExits1(string address, string advice)
    {
        var (exit, _, error) = await RunAsync("demo", "--address", address);

        Assert.Equal(1, exit);
        AssertOneErrorLine(error, advice);
    }

    [Theory]
    [InlineData("--port=99999", "not a TCP port")]
    [InlineData("--host=no-such-host.invalid", "does not resolve")]
    [InlineData("--python=/nonexistent/python3", "RAYCLIENT_PYTHON")]
    public async Task Start_BadInput_PrintsOneErrorLineAndExits1(string option, string advice)
    {
        var (exit, _, error) = await RunAsync("start", option);

        Assert.Equal(1, exit);
        AssertOneErrorLine(error, advice);
    }

    [Fact]
    public async Task Start_DashboardPortTaken_PrintsOneErrorLineNamingThePortAndExits1()
    {
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;

        var (exit, _, error) = await RunAsync("start", "--port", "0", "--dashboard-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--num-cpus", "1");

        Assert.Equal(1, exit);
        AssertOneErrorLine(error, $"127.0.0.1:{port}");
        Assert.Contains("--dashboard-port", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "start", "--port=abc" }, "--port")] // a value of the wrong type
    [InlineData(new[] { "start", "--max-kv-value-size=12X" }, "is not a size")] // a value the option's parser refuses
    [InlineData(new[] { "demo", "--no-such-option" }, "--no-such-option")] // an unknown option
    [InlineData(new[] { "job", "status" }, "job status --help")] // a missing argument
    [InlineData(new[] { "job", "logs", "--address" }, "--address")] // an option without its value
    [InlineData(new[] { "no-such-command" }, "no-such-command")] // an unknown command
    public async Task UsageError_PrintsOneErrorLineAndExits2LikeClick(string[] args, string advice)
    {
        // Ray's `ray` CLI is click: a usage error (UsageError, BadParameter, NoSuchOption, MissingParameter) exits with 2.
        var (exit, output, error) = await RunAsync(args);

        Assert.Equal(2, exit);
        AssertOneErrorLine(error, advice);
        Assert.Equal(string.Empty, output);
    }

    [Fact]
    public async Task Start_HostLocalhost_ServesClients()
    {
        using var output = new SignallingWriter("listening at ");
        using var error = new StringWriter();
        using var stop = new CancellationTokenSource();

        var run = CliApp.RunAsync(["start", "--host", "localhost", "--port", "0", "--dashboard-port", "0", "--num-cpus", "1"], output, error, stop.Token);
        var line = await output.Matched.WaitAsync(TimeSpan.FromSeconds(60));
        try
        {
            var address = line[(line.IndexOf("ray://", StringComparison.Ordinal))..].Split(' ')[0].TrimEnd('.');
            Assert.StartsWith("ray://127.0.0.1:", address);
            await using var ray = await RaySession.ConnectAsync(new RaySessionOptions { Address = address });
            Assert.Equal(1, (await ray.GetClusterResourcesAsync())["CPU"]);
        }
        finally
        {
            await stop.CancelAsync();
        }

        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(string.Empty, error.ToString());
    }

    [Fact]
    public async Task Help_NamesTheToolRayclient()
    {
        var (exit, output, _) = await RunAsync("--help");

        Assert.Equal(0, exit);
        Assert.Contains("rayclient [command] [options]", output);
        Assert.DoesNotContain("RayClient.Cli", output);
        Assert.DoesNotContain("testhost", output);
    }

    [Theory]
    [InlineData(1, "ray://<head-node>:10001", "demo", "--address", "http://127.0.0.1:8265")] // a runtime error
    [InlineData(2, "--bogus", "demo", "--bogus")] // a usage error
    public async Task Process_BadInput_ExitCodeAsRayAndNoStackTrace(int expectedExit, string advice, params string[] args)
    {
        // The real executable: what a user sees in a terminal, including the host's own exception handling.
        var info = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        info.ArgumentList.Add(typeof(CliApp).Assembly.Location);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        Assert.Equal(expectedExit, process.ExitCode);
        AssertOneErrorLine(await stderr, advice);
        Assert.Equal(string.Empty, await stdout);
    }

    private static async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await CliApp.RunAsync(args, output, error);
        return (exit, output.ToString(), error.ToString());
    }

    private static void AssertOneErrorLine(string error, string advice)
    {
        var lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Length == 1, $"expected one line, got:\n{error}");
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(advice, lines[0]);
        Assert.DoesNotContain("Exception", lines[0]);
        Assert.DoesNotContain("(Parameter", lines[0]);
    }

    /// <summary>A writer that completes <see cref="Matched"/> with the first line containing a marker (the CLI writes from another thread).</summary>
    private sealed class SignallingWriter(string marker) : StringWriter
    {
        private readonly TaskCompletionSource<string> _matched = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<string> Matched => _matched.Task;

        public override Task WriteLineAsync(string? value)
        {
            lock (this)
            {
                base.WriteLine(value);
            }

            if (value is not null && value.Contains(marker, StringComparison.Ordinal))
            {
                _matched.TrySetResult(value);
            }

            return Task.CompletedTask;
        }
    }
}
