using RayClient.Session;

namespace RayClient.Tests.Session;

public sealed class FunctionPayloadCacheTests
{
    [Fact]
    public async Task GetOrPut_SameFunctionTwice_PutsOnceAndReturnsTheSameId()
    {
        var puts = new List<string>();
        var cache = new FunctionPayloadCache((module, name) =>
        {
            puts.Add($"{module}.{name}");
            return Task.FromResult(new RayId([(byte)puts.Count]));
        });

        var first = await cache.GetOrPut("fibonacci", "generate_fibonacci");
        var second = await cache.GetOrPut("fibonacci", "generate_fibonacci");

        Assert.Equal(["fibonacci.generate_fibonacci"], puts);
        Assert.Equal(first, second);
    }

    [Fact]
    public async Task GetOrPut_DifferentModuleOrName_PutsEachOnce()
    {
        var puts = new List<string>();
        var cache = new FunctionPayloadCache((module, name) =>
        {
            puts.Add($"{module}.{name}");
            return Task.FromResult(new RayId([(byte)puts.Count]));
        });

        var a = await cache.GetOrPut("m", "f");
        var b = await cache.GetOrPut("m", "g");
        var c = await cache.GetOrPut("n", "f");
        await cache.GetOrPut("m", "f");

        Assert.Equal(["m.f", "m.g", "n.f"], puts);
        Assert.Equal(3, new[] { a, b, c }.Distinct().Count());
        Assert.Equal(3, cache.Count);
    }

    [Fact]
    public async Task GetOrPut_ConcurrentFirstCallers_ShareOnePut()
    {
        var puts = 0;
        var release = new TaskCompletionSource<RayId>(TaskCreationOptions.RunContinuationsAsynchronously);
        var cache = new FunctionPayloadCache((_, _) =>
        {
            Interlocked.Increment(ref puts);
            return release.Task;
        });
        using var start = new Barrier(8);

        // Dedicated threads (not pool threads a barrier would block), each returning the put task unawaited.
        var callers = Enumerable.Range(0, 8).Select(_ => Task.Factory.StartNew(
            () =>
            {
                start.SignalAndWait(TimeSpan.FromSeconds(30));
                return cache.GetOrPut("m", "f");
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default)).ToArray();
        var pending = await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(30));
        release.SetResult(new RayId([7]));
        var ids = await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(1, puts);
        Assert.All(ids, id => Assert.Equal(new RayId([7]), id));
    }

    [Fact]
    public async Task GetOrPut_PutFailed_CallerSeesErrorAndALaterCallPutsAgain()
    {
        var attempts = 0;
        var cache = new FunctionPayloadCache((_, _) => ++attempts == 1
            ? Task.FromException<RayId>(new RayException("cannot load"))
            : Task.FromResult(new RayId([2])));

        await Assert.ThrowsAsync<RayException>(() => cache.GetOrPut("m", "f"));
        var id = await cache.GetOrPut("m", "f");

        Assert.Equal(2, attempts);
        Assert.Equal(new RayId([2]), id);
    }

    [Fact]
    public async Task GetOrPut_PutFailedLater_NextCallerSeesErrorThenTheOneAfterPutsAgain()
    {
        // A put in flight is shared; when it fails, the caller that finds it failed still gets the
        // failure (it asked for that put) and drops it, so the call after it puts again.
        var attempts = 0;
        var first = new TaskCompletionSource<RayId>(TaskCreationOptions.RunContinuationsAsynchronously);
        var cache = new FunctionPayloadCache((_, _) => ++attempts == 1 ? first.Task : Task.FromResult(new RayId([3])));

        var inFlight = cache.GetOrPut("m", "f");
        first.SetException(new RayException("worker died"));
        await Assert.ThrowsAsync<RayException>(() => inFlight);
        await Assert.ThrowsAsync<RayException>(() => cache.GetOrPut("m", "f"));
        var id = await cache.GetOrPut("m", "f");

        Assert.Equal(2, attempts);
        Assert.Equal(new RayId([3]), id);
    }
}
