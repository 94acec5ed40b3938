using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Server;
using Xunit.Abstractions;

namespace RayClient.FunctionalTests;

/// <summary>
/// The server logs the life of its Python workers: a start, an exit it asked for, and a death it
/// did not ask for (here a real SIGKILL from outside, as the OOM killer or an operator sends it).
/// </summary>
public sealed class WorkerLogTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Module = """
        import os
        import time

        def write_pid_then_wait(path):
            with open(path + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(path + ".tmp", path)
            time.sleep(60)
            return "not killed"

        def pid():
            return os.getpid()
        """;

    private readonly LogRecorder _log = new();
    private LocalRayServer _server = null!;
    private string _workingDir = null!;

    public async Task InitializeAsync()
    {
        _workingDir = Path.Combine(Path.GetTempPath(), "rayclient-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_workingDir);
        await File.WriteAllTextAsync(Path.Combine(_workingDir, "workerlog.py"), Module);
        _server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1, LoggerFactory = _log.Factory });
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_workingDir, recursive: true);
        output.WriteLine(_log.Dump()); // shown by the test runner when the test failed
        _log.Factory.Dispose();
    }

    private Task<RaySession> ConnectAsync() =>
        RaySession.ConnectAsync(new RaySessionOptions { Address = _server.Address, RuntimeEnv = new RuntimeEnv { WorkingDir = _workingDir } });

    [Fact]
    public async Task Worker_KilledWhileRunningATask_CrashIsLoggedAndTheTaskFailsWithWorkerCrashed()
    {
        await using var ray = await ConnectAsync();
        var marker = Path.Combine(_workingDir, "pid.txt");
        var running = ray.Task(PyFunction.Of<string>("workerlog", "write_pid_then_wait"), marker).SetMaxRetries(0).Remote();
        await Eventually.TrueAsync(() => File.Exists(marker), "the task has written its worker's pid");
        var pid = int.Parse(await File.ReadAllTextAsync(marker), CultureInfo.InvariantCulture);
        Assert.Contains(_log.Events(ServerEventIds.WorkerStarted), e => e.Message.Contains($"worker {pid} ", StringComparison.Ordinal));

        using (var process = Process.GetProcessById(pid))
        {
            process.Kill(); // SIGKILL, from outside the server
        }

        var error = await Assert.ThrowsAnyAsync<RayException>(() => running.GetAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("WorkerCrashedError", error.Message);
        var crash = Assert.Single(_log.Events(ServerEventIds.WorkerCrashed), e => e.Message.Contains($"worker {pid} ", StringComparison.Ordinal));
        Assert.Equal(LogLevel.Warning, crash.Level);
        Assert.Contains("killed by signal 9", crash.Message);
        Assert.DoesNotContain(_log.Events(ServerEventIds.WorkerExited), e => e.Message.Contains($"worker {pid} ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Worker_ServerStops_ExitIsLoggedAsNoCrash()
    {
        long pid;
        await using (var ray = await ConnectAsync())
        {
            pid = await ray.Call(PyFunction.Of<long>("workerlog", "pid"));
        }

        await _server.DisposeAsync(); // shuts its workers down

        var exit = Assert.Single(_log.Events(ServerEventIds.WorkerExited), e => e.Message.Contains($"worker {pid} ", StringComparison.Ordinal));
        Assert.Equal(LogLevel.Debug, exit.Level);
        Assert.Empty(_log.Events(ServerEventIds.WorkerCrashed));
    }
}
