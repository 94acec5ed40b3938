using System.Diagnostics;
using System.Runtime.InteropServices;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Server;
using Xunit.Abstractions;

namespace RayClient.FunctionalTests;

/// <summary>
/// <c>rayclient start</c> as a service: a real process (the built CLI, <c>dotnet RayClient.Cli.dll</c>)
/// on a free port, stopped with real signals.
/// </summary>
public sealed class CliSignalTests(ITestOutputHelper log)
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
        await using var cli = await CliProcess.StartAsync();
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
        await using (var cli = await CliProcess.StartAsync())
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

}
