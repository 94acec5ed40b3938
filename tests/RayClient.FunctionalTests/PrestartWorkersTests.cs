using RayClient.FunctionalTests.Infrastructure;
using RayClient.Server;

namespace RayClient.FunctionalTests;

/// <summary><see cref="LocalRayServerOptions.PrestartWorkers"/>: interpreters started with the server, used by the first tasks.</summary>
public sealed class PrestartWorkersTests
{
    [Fact]
    public async Task StartAsync_PrestartWorkers_StartsThemAndTheFirstTasksRunOnThem()
    {
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 2, PrestartWorkers = 2 });
        var pool = server.State.Engine.Pool;
        await Eventually.TrueAsync(() => pool.Count == 2, "two workers are prestarted");
        var prestarted = pool.Snapshot().Select(w => w.Pid).ToHashSet();

        await using var ray = await RaySession.ConnectAsync(new RaySessionOptions { Address = server.Address });
        var getpid = PyFunction.Of<int>("os", "getpid");
        var pids = await ray.GetAsync(Enumerable.Range(0, 6).Select(_ => ray.Task(getpid).Remote()).ToList());

        Assert.Subset(prestarted, pids.ToHashSet());
        Assert.Equal(2, pool.Started);
    }

    [Fact]
    public async Task StartAsync_NegativePrestartWorkers_ThrowsNamingTheOption()
    {
        var error = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => LocalRayServer.StartAsync(new LocalRayServerOptions { PrestartWorkers = -1 }));
        Assert.Equal(nameof(LocalRayServerOptions.PrestartWorkers), error.ParamName);
    }
}
