using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Server;
using Xunit.Abstractions;

namespace RayClient.FunctionalTests;

/// <summary>
/// <c>rayclient start</c> as a service: a real process (the built CLI, <c>dotnet RayClient.Cli.dll</c>)
/// on a free port, stopped with real signals.
/// </summary>
public sealed partial class CliSignalTests(ITestOutputHelper log)
{
    private const int SigInt = 2;
    private const int SigKill = 9;
    private const int SigTerm = 15;

    [Theory]
    [InlineData(SigTerm)]
    [InlineData(SigInt)]
    public async Task Start_Signal_StopsWorkersDeletesWorkDirAndExitsZero(int signal)
    {
        var total = Stopwatch.StartNew();
        await using var cli = await CliServer.StartAsync();
        log.WriteLine($"started {total.Elapsed}");
        var workDir = cli.WorkDirectory();
        Assert.True(Directory.Exists(workDir));
        // A connected session with a live worker: stopping must end both, not wait for them.
        await using var ray = await RaySession.ConnectAsync(new RaySessionOptions { Address = cli.Address, ReconnectGracePeriod = TimeSpan.Zero });
        var workerPid = await ray.Call(PyFunction.Of<int>("os", "getpid"));
        Assert.True(IsAlive(workerPid));
        log.WriteLine($"task ran {total.Elapsed}");

        var stopwatch = Stopwatch.StartNew();
        Assert.Equal(0, Kill(cli.Process.Id, signal));
        var exited = await cli.WaitForExitAsync(TimeSpan.FromSeconds(15));

        Assert.True(exited, $"rayclient start did not stop within 15 s of signal {signal}; output: {cli.Output}");
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(5), $"stopping took {stopwatch.Elapsed}");
        Assert.Equal(0, cli.Process.ExitCode);
        Assert.Contains("Stopped.", cli.Output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(workDir), "the work dir is still there");
        await Eventually.TrueAsync(() => !IsAlive(workerPid), "the worker process has ended", TimeSpan.FromSeconds(5));
        log.WriteLine($"checked {total.Elapsed}");
    }

    [Fact]
    public async Task Start_KilledWithSigkill_NextStartDeletesItsWorkDir()
    {
        string workDir;
        await using (var cli = await CliServer.StartAsync())
        {
            workDir = cli.WorkDirectory();
            Assert.Equal(0, Kill(cli.Process.Id, SigKill));
            Assert.True(await cli.WaitForExitAsync(TimeSpan.FromSeconds(15)));
        }

        Assert.True(Directory.Exists(workDir), "SIGKILL leaves the work dir (nothing runs to delete it)");

        await using var next = await LocalRayServer.StartAsync();

        Assert.False(Directory.Exists(workDir), "the next server did not delete the dead server's work dir");
        Assert.True(Directory.Exists(next.WorkDirectoryPath));
    }

    [Fact]
    public async Task StartAsync_AnotherLiveServersWorkDir_IsLeftAlone()
    {
        await using var first = await LocalRayServer.StartAsync();
        await using var second = await LocalRayServer.StartAsync();

        Assert.True(Directory.Exists(first.WorkDirectoryPath));
        Assert.NotEqual(first.WorkDirectoryPath, second.WorkDirectoryPath);
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    [GeneratedRegex(@"listening at (ray://\S+:\d+)\.")]
    private static partial Regex ListeningAt();

    /// <summary>A <c>rayclient start --port 0</c> process and what it printed.</summary>
    private sealed class CliServer : IAsyncDisposable
    {
        private readonly System.Text.StringBuilder _output = new();

        private CliServer(Process process) => Process = process;

        public Process Process { get; }

        public string Address { get; private set; } = string.Empty;

        public string Output
        {
            get
            {
                lock (_output)
                {
                    return _output.ToString();
                }
            }
        }

        public static async Task<CliServer> StartAsync()
        {
            var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "RayClient.Cli.dll"));
            info.ArgumentList.Add("start");
            info.ArgumentList.Add("--port");
            info.ArgumentList.Add("0");
            var cli = new CliServer(Process.Start(info)!);
            var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            cli.Process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    listening.TrySetException(new InvalidOperationException($"rayclient start ended before listening: {cli.Output}"));
                    return;
                }

                lock (cli._output)
                {
                    cli._output.AppendLine(e.Data);
                }

                if (ListeningAt().Match(e.Data) is { Success: true } match)
                {
                    listening.TrySetResult(match.Groups[1].Value);
                }
            };
            cli.Process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    lock (cli._output)
                    {
                        cli._output.AppendLine(e.Data);
                    }
                }
            };
            cli.Process.BeginOutputReadLine();
            cli.Process.BeginErrorReadLine();
            try
            {
                cli.Address = await listening.Task.WaitAsync(TimeSpan.FromSeconds(60));
            }
            catch
            {
                await cli.DisposeAsync();
                throw;
            }

            return cli;
        }

        /// <summary>The process's work dir: <c>{temp}/rayclient-server/{pid}-{guid}</c>.</summary>
        public string WorkDirectory()
        {
            var root = Path.Combine(Path.GetTempPath(), "rayclient-server");
            return Assert.Single(Directory.GetDirectories(root, $"{Process.Id}-*"));
        }

        public async Task<bool> WaitForExitAsync(TimeSpan timeout)
        {
            try
            {
                await Process.WaitForExitAsync().WaitAsync(timeout);
                return true;
            }
            catch (TimeoutException)
            {
                return false;
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                await Process.WaitForExitAsync();
            }

            Process.Dispose();
        }
    }
}
