using RayClient.FunctionalTests.Infrastructure;

namespace RayClient.FunctionalTests;

/// <summary>
/// Python tasks that submit tasks (<c>f.remote()</c> inside a task), and Ray's recursive
/// cancel reaching them, against the embedded server with real worker processes.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class NestedTaskTests(ServerFixture fixture) : IDisposable
{
    private static readonly PyFunction<string> ParentOfGated = PyFunction.Of<string>("tasks", "parent_of_gated");
    private readonly string _files = Directory.CreateTempSubdirectory("rayclient-nested-").FullName;

    public void Dispose() => Directory.Delete(_files, recursive: true);

    [Fact]
    public async Task RemoteFunction_SubmitsChildren_AndBlockedParentsLendTheirCpu()
    {
        await using var ray = await fixture.ConnectAsync();

        // fib(7) has 41 calls nested 7 deep on a 2-CPU server: it finishes only if a parent
        // waiting in ray.get gives its CPU to its children, as in Ray.
        var result = await ray.Task(PyFunction.Of<long>("tasks", "fib"), 7).Remote().GetAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(13L, result);
        await Eventually.TrueAsync(async () => (await ray.GetAvailableResourcesAsync()).GetValueOrDefault("CPU") == 2, "every CPU is back");
    }

    [Fact]
    public async Task RemoteFunction_WithOptions_ReturnsSeveralRefs()
    {
        await using var ray = await fixture.ConnectAsync();

        var swapped = await ray.Call(PyFunction.Of<List<string>>("tasks", "swap_in_child"), "a", "b");

        Assert.Equal(["b", "a"], swapped);
    }

    [Fact]
    public async Task CancelRecursive_InterruptsTheChildToo()
    {
        await using var ray = await fixture.ConnectAsync();
        var (parent, _, done) = await StartParentOfGatedChildAsync(ray);

        await ray.CancelAsync(parent, recursive: true);

        await Assert.ThrowsAsync<RayTaskCancelledException>(() => parent.GetAsync(TimeSpan.FromSeconds(30)));
        // The child waits on a gate that stays closed: its CPU comes back only if it was cancelled.
        await Eventually.TrueAsync(async () => (await ray.GetAvailableResourcesAsync()).GetValueOrDefault("CPU") == 2, "the child's CPU is free");
        Assert.False(File.Exists(done));
    }

    [Fact]
    public async Task CancelNotRecursive_LeavesTheChildRunning()
    {
        await using var ray = await fixture.ConnectAsync();
        var (parent, gate, done) = await StartParentOfGatedChildAsync(ray);

        await ray.CancelAsync(parent, recursive: false);

        await Assert.ThrowsAsync<RayTaskCancelledException>(() => parent.GetAsync(TimeSpan.FromSeconds(30)));
        Assert.False(File.Exists(done));
        await File.WriteAllTextAsync(gate, "open");
        await Eventually.TrueAsync(() => File.Exists(done), "the child, not cancelled, runs to its end");
    }

    /// <summary>A parent task blocked in ray.get on its child, which waits on a closed gate file.</summary>
    private async Task<(ObjectRef<string> Parent, string Gate, string Done)> StartParentOfGatedChildAsync(RaySession ray)
    {
        var (started, gate, done) = (Path.Combine(_files, "started"), Path.Combine(_files, "gate"), Path.Combine(_files, "done"));
        var parent = ray.Task(ParentOfGated, started, gate, done).Remote();
        await Eventually.TrueAsync(() => File.Exists(started), "the child task runs");
        return (parent, gate, done);
    }
}
