using System.Diagnostics;
using RayClient.FunctionalTests.Infrastructure;

namespace RayClient.FunctionalTests;

[Collection(ServerCollection.Name)]
public sealed class ActorTests(ServerFixture fixture)
{
    private static readonly PyActorClass Counter = PyActorClass.Of("tasks", "Counter");
    private static readonly PyActorMethod<long> Incr = PyActorMethod.Of<long>("incr");
    private static readonly PyActorMethod<long> Get = PyActorMethod.Of<long>("get");

    [Fact]
    public async Task Counter_EightConcurrentCallers_EndsAtExactCountInPerCallerOrder()
    {
        await using var ray = await fixture.ConnectAsync();
        var counter = ray.Actor(Counter).Remote();

        var callers = Enumerable.Range(0, 8).Select(caller => Task.Run(async () =>
        {
            var refs = Enumerable.Range(0, 125).Select(seq => counter.Task(Incr, caller, seq).Remote()).ToList();
            return await ray.GetAsync(refs);
        })).ToList();
        var results = await Task.WhenAll(callers);

        Assert.Equal(1000L, await counter.Call(Get));
        foreach (var perCaller in results)
        {
            Assert.Equal(perCaller.OrderBy(v => v), perCaller); // each caller's calls ran in its order
        }

        var log = await counter.Call(PyActorMethod.Of<Dictionary<long, List<long>>>("caller_log"));
        Assert.All(log.Values, seqs => Assert.Equal(Enumerable.Range(0, 125).Select(i => (long)i), seqs));
    }

    [Fact]
    public async Task NamedDetachedActor_IsFoundFromAnotherSession_AndGoneAfterKill()
    {
        var name = $"counter-{Guid.NewGuid():N}";
        await using (var first = await fixture.ConnectAsync(o => o.Namespace = "shared"))
        {
            var created = first.Actor(Counter, 41).SetName(name).SetDetached().Remote();
            Assert.Equal(42L, await created.Call(Incr));
        }

        await using var second = await fixture.ConnectAsync(o => o.Namespace = "shared");
        var found = await second.GetActorAsync(name);
        Assert.Equal(43L, await found.Call(Incr));
        Assert.Contains(await second.ListNamedActorsAsync(), a => a.Name == name);
        Assert.Contains(await second.ListNamedActorsAsync(allNamespaces: true), a => a.Name == name && a.Namespace == "shared");

        await second.KillAsync(found);

        await Assert.ThrowsAsync<RayActorException>(() => found.Call(Incr).GetAsync());
        await Eventually.TrueAsync(async () => !(await second.ListNamedActorsAsync()).Any(a => a.Name == name), "the killed actor's name is free");
        await Assert.ThrowsAnyAsync<RayException>(() => second.GetActorAsync(name));
    }

    [Fact]
    public async Task NamedActorInNamespace_CreatedAndLookedUpFromAnotherSession_BothHandlesReportNameAndNamespace()
    {
        var name = $"named-{Guid.NewGuid():N}";
        var rayNamespace = $"ns-{Guid.NewGuid():N}";
        await using var first = await fixture.ConnectAsync();
        var created = first.Actor(Counter, 1).SetName(name).SetNamespace(rayNamespace).Remote();
        Assert.Equal(2L, await created.Call(Incr));

        await using var second = await fixture.ConnectAsync();
        var found = await second.GetActorAsync(name, rayNamespace);
        Assert.Equal(3L, await found.Call(Incr)); // the same actor, found through its namespace
        Assert.Equal(await created.GetIdAsync(), await found.GetIdAsync());

        Assert.Equal((name, rayNamespace), (created.Name, created.Namespace));
        Assert.Equal((name, rayNamespace), (found.Name, found.Namespace));
        Assert.Equal($"Actor(Counter, {await created.GetIdAsync()}, name={name}, namespace={rayNamespace})", created.ToString());
        Assert.Contains($"name={name}, namespace={rayNamespace}", found.ToString(), StringComparison.Ordinal);

        // Looked up without a namespace from a session in that namespace: the session's is the actor's.
        await using var third = await fixture.ConnectAsync(o => o.Namespace = rayNamespace);
        var inJobNamespace = await third.GetActorAsync(name);
        Assert.Equal((name, rayNamespace), (inJobNamespace.Name, inJobNamespace.Namespace));
        Assert.Equal(4L, await inJobNamespace.Call(Incr));
    }

    [Fact]
    public async Task ActorProcessKilled_CallInFlightFails_AndARestartedInstanceServesLaterCalls()
    {
        await using var ray = await fixture.ConnectAsync();
        var counter = ray.Actor(Counter, 10).SetMaxRestarts(1).Remote();
        Assert.Equal(11L, await counter.Call(Incr));
        var pid = await counter.Call(PyActorMethod.Of<int>("pid"));

        var marker = Path.Combine(Path.GetTempPath(), $"rayclient-actor-{Guid.NewGuid():N}");
        var inFlight = counter.Call(PyActorMethod.Of<long>("slow"), marker, 60);
        await Eventually.TrueAsync(() => File.Exists(marker), "the slow method is running");

        Process.GetProcessById(pid).Kill(); // from outside, as a crash would

        var died = await Assert.ThrowsAsync<RayActorException>(() => inFlight.GetAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("died", died.Message);
        File.Delete(marker);
        Assert.Equal(11L, await counter.Call(Incr)); // a fresh instance: state lost, as in Ray
        Assert.NotEqual(pid, await counter.Call(PyActorMethod.Of<int>("pid")));
    }

    [Fact]
    public async Task ActorHandle_PassedIntoATask_IsUsedThere_AndComesBackUsable()
    {
        await using var ray = await fixture.ConnectAsync();
        var counter = ray.Actor(Counter, 100).Remote();

        var last = await ray.Call(PyFunction.Of<long>("tasks", "use_counter"), counter, 5);
        var returned = await ray.Call(PyFunction.Of<PyActorHandle>("tasks", "pass_back"), counter);

        Assert.Equal(105L, last);
        Assert.Equal(106L, await returned.Call(Incr));
        Assert.Equal(await counter.GetIdAsync(), await returned.GetIdAsync());
    }

    [Fact]
    public async Task ActorResources_AreHeldForItsLifetime_AndFreedWhenItsHandleIsDisposed()
    {
        await using var ray = await fixture.ConnectAsync();
        var counter = ray.Actor(Counter).SetResource("accelerator", 1).Remote();
        Assert.Equal(1L, await counter.Call(Incr));
        Assert.Equal(0, (await ray.GetAvailableResourcesAsync()).GetValueOrDefault("accelerator"));

        await counter.DisposeAsync();

        await Eventually.TrueAsync(async () => (await ray.GetAvailableResourcesAsync()).GetValueOrDefault("accelerator") == 1, "the released actor gave its resource back");
        await Assert.ThrowsAsync<RayActorException>(() => counter.Call(Incr).GetAsync());
    }

    [Fact]
    public async Task AsCompletedAsync_YieldsInCompletionOrder()
    {
        await using var ray = await fixture.ConnectAsync();
        var gate = Path.Combine(Path.GetTempPath(), $"rayclient-gate-{Guid.NewGuid():N}");
        var late = ray.Call(PyFunction.Of<long>("tasks", "wait_for_file"), gate, 1);
        var early = ray.Call(PyFunction.Of<long>("tasks", "add"), 1, 1);

        var order = new List<long>();
        await foreach (var done in ray.AsCompletedAsync([late, early]))
        {
            order.Add(await done);
            await File.WriteAllTextAsync(gate, "go"); // only now may the late task finish
        }

        File.Delete(gate);
        Assert.Equal([2L, 1L], order);
    }

    [Fact]
    public async Task MaxConcurrency_LetsAMethodRunWhileAnotherWaits()
    {
        await using var ray = await fixture.ConnectAsync();
        var gate = Path.Combine(Path.GetTempPath(), $"rayclient-gate-{Guid.NewGuid():N}");
        var actor = ray.Actor(Counter).SetMaxConcurrency(2).Remote();

        var waiting = actor.Call(PyActorMethod.Of<string>("wait_gate"), gate);
        var opening = actor.Call(PyActorMethod.Of<string>("open_gate"), gate); // with max_concurrency=1 this would queue behind the wait

        Assert.Equal("opened", await opening.GetAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("passed the gate", await waiting.GetAsync(TimeSpan.FromSeconds(30)));
        File.Delete(gate);
    }

    [Fact]
    public async Task Names_AreUniquePerNamespace_UnlessGetIfExists()
    {
        await using var ray = await fixture.ConnectAsync();
        var name = $"unique-{Guid.NewGuid():N}";
        var first = ray.Actor(Counter).SetName(name).Remote();
        await first.GetIdAsync();

        var clash = await Assert.ThrowsAnyAsync<RayException>(() => ray.Actor(Counter).SetName(name).Remote().GetIdAsync());
        var same = ray.Actor(Counter).SetName(name).SetGetIfExists().Remote();
        var otherNamespace = ray.Actor(Counter).SetName(name).SetNamespace("elsewhere").Remote();

        Assert.Contains("already taken", clash.Message);
        Assert.Equal(await first.GetIdAsync(), await same.GetIdAsync());
        Assert.NotEqual(await first.GetIdAsync(), await otherNamespace.GetIdAsync());
        await ray.KillAsync(otherNamespace);
    }

    [Fact]
    public async Task KillAsync_WithRestart_BringsUpAFreshInstance()
    {
        await using var ray = await fixture.ConnectAsync();
        var counter = ray.Actor(Counter, 5).SetMaxRestarts(1).SetMaxTaskRetries(1).Remote(); // a call caught by the kill is retried
        Assert.Equal(6L, await counter.Call(Incr));

        await ray.KillAsync(counter, noRestart: false);

        Assert.Equal(6L, await counter.Call(Incr).GetAsync(TimeSpan.FromSeconds(30))); // restarted from the constructor
    }

    [Fact]
    public async Task Actor_NeedingMoreThanTheCluster_FailsAtOnce()
    {
        await using var ray = await fixture.ConnectAsync();

        var error = await Assert.ThrowsAnyAsync<RayException>(() => ray.Actor(Counter).SetNumGpus(4).Remote().GetIdAsync());

        Assert.Contains("could never run", error.Message);
    }

    [Fact]
    public async Task ActorErrors_AreTyped()
    {
        await using var ray = await fixture.ConnectAsync();
        var counter = ray.Actor(Counter).Remote();
        var broken = ray.Actor(PyActorClass.Of("tasks", "Broken")).Remote();

        var methodError = await Assert.ThrowsAsync<RayTaskException>(() => counter.Call(PyActorMethod.Of("fail")).GetAsync());
        var constructorError = await Assert.ThrowsAnyAsync<RayException>(() => broken.Call(Get).GetAsync());

        Assert.Equal("builtins.RuntimeError", methodError.PythonType);
        Assert.Contains("constructor failed", constructorError.Message);
        Assert.Equal(1L, await counter.Call(Incr)); // the actor survives a failing method
    }

    [Fact]
    public async Task CancelAsync_LongTask_FreesItsCpuForTheNextTask()
    {
        await using var ray = await fixture.ConnectAsync();
        var sleepThen = PyFunction.Of<long>("tasks", "sleep_then");
        var longTask = ray.Task(sleepThen, 60, 1).SetNumCpus(2).Remote();
        await Eventually.TrueAsync(async () => (await ray.GetAvailableResourcesAsync()).GetValueOrDefault("CPU") == 0, "the long task holds both CPUs");
        var next = ray.Task(PyFunction.Of<long>("tasks", "add"), 1, 2).SetNumCpus(2).Remote();

        await ray.CancelAsync(longTask);

        await Assert.ThrowsAsync<RayTaskCancelledException>(() => longTask.GetAsync());
        Assert.Equal(3L, await next.GetAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task CancelAsync_Force_KillsTheWorker()
    {
        await using var ray = await fixture.ConnectAsync();
        var longTask = ray.Task(PyFunction.Of<long>("tasks", "sleep_then"), 60, 1).SetMaxRetries(3).Remote();
        await Eventually.TrueAsync(async () => (await ray.GetAvailableResourcesAsync()).GetValueOrDefault("CPU") < 2, "the task is running");

        await ray.CancelAsync(longTask, force: true);

        await Assert.ThrowsAsync<RayTaskCancelledException>(() => longTask.GetAsync(TimeSpan.FromSeconds(30)));
    }
}
