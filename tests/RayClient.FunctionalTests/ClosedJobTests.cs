using RayClient.FunctionalTests.Infrastructure;
using RayClient.Server;

namespace RayClient.FunctionalTests;

/// <summary>A job that ends takes its work with it, even work on its way to a worker.</summary>
public sealed class ClosedJobTests
{
    [Fact]
    public async Task DisposeAsync_WhileTheTasksWorkerStarts_TheTaskNeverRuns()
    {
        // The job's workers import a sitecustomize (through PYTHONPATH, an env var of the job) that
        // waits for a gate file: the task is held between "taken from the queue" and "running on
        // a worker" for exactly as long as the test wants.
        var dir = Path.Combine(Path.GetTempPath(), "rayclient-tests", Guid.NewGuid().ToString("N"));
        var site = Path.Combine(dir, "site");
        var workingDir = Path.Combine(dir, "wd");
        Directory.CreateDirectory(site);
        Directory.CreateDirectory(workingDir);
        var gate = Path.Combine(dir, "gate");
        var started = Path.Combine(dir, "started");
        var ran = Path.Combine(dir, "ran");
        await File.WriteAllTextAsync(Path.Combine(site, "sitecustomize.py"), $$"""
            import os, time
            open({{Py(started)}}, "w").close()
            while not os.path.exists({{Py(gate)}}):
                time.sleep(0.01)
            """);
        await File.WriteAllTextAsync(Path.Combine(workingDir, "jobs.py"), "def touch(path):\n    open(path, 'w').close()\n    return 1\n");

        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1 });
        try
        {
            var ray = await RaySession.ConnectAsync(new RaySessionOptions
            {
                Address = server.Address,
                RuntimeEnv = new RuntimeEnv
                {
                    WorkingDir = workingDir,
                    EnvVars = new Dictionary<string, string> { ["PYTHONPATH"] = site },
                },
            });
            var touched = ray.Call(PyFunction.Of<long>("jobs", "touch"), ran);
            await touched.GetIdAsync(); // accepted by the server
            await Eventually.TrueAsync(() => File.Exists(started), "the task's worker is starting");

            await ray.DisposeAsync();
            await Eventually.TrueAsync(() => server.SessionCount == 0, "the job ended on the server");
            await File.WriteAllTextAsync(gate, string.Empty);

            await Eventually.TrueAsync(() => server.State.Engine.Scheduler.Completed == 1, "the scheduler is done with the task");
            Assert.Equal(0, server.TaskExecutions);
            Assert.False(File.Exists(ran), "the task of a closed job ran");
        }
        finally
        {
            await File.WriteAllTextAsync(gate, string.Empty);
            await server.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string Py(string path) => "'" + path.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";
}
