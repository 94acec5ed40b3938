using System.Numerics;
using System.Security.Cryptography;
using RayClient.FunctionalTests.Infrastructure;

namespace RayClient.FunctionalTests;

[Collection(ServerCollection.Name)]
public sealed class TaskTests(ServerFixture fixture)
{
    private static readonly PyFunction<long> Add = PyFunction.Of<long>("tasks", "add");
    private static readonly PyFunction<object?> Echo = PyFunction.Of("tasks", "echo");

    [Fact]
    public async Task Call_PythonFunction_ReturnsTypedResult()
    {
        await using var ray = await fixture.ConnectAsync();

        var sum = await ray.Call(Add, 40, 2).GetAsync();

        Assert.Equal(42L, sum);
    }

    [Fact]
    public async Task Call_WithKeywordArguments_PassesThem()
    {
        await using var ray = await fixture.ConnectAsync();

        var sum = await ray.Task(Add, 1).SetKeywordArgument("b", 10).Remote();

        Assert.Equal(11L, sum);
    }

    [Fact]
    public async Task Call_ValuesOfEveryMappedType_RoundTripThroughPython()
    {
        await using var ray = await fixture.ConnectAsync();
        var big = BigInteger.Pow(2, 100) + 7;
        var dict = new Dictionary<string, object?> { ["a"] = 1L, ["b"] = new List<object?> { "x", null } };

        Assert.Equal(big, await ray.Call(PyFunction.Of<BigInteger>("tasks", "echo"), big));
        Assert.Equal("héllo ✓ 𝄞", await ray.Call(PyFunction.Of<string>("tasks", "echo"), "héllo ✓ 𝄞"));
        Assert.Equal(new byte[] { 0, 1, 255 }, await ray.Call(PyFunction.Of<byte[]>("tasks", "echo"), new byte[] { 0, 1, 255 }));
        Assert.Equal(new[] { 1.5, -2.25 }, await ray.Call(PyFunction.Of<double[]>("tasks", "echo"), new[] { 1.5, -2.25 }));
        Assert.True(await ray.Call(PyFunction.Of<bool>("tasks", "echo"), true));
        Assert.Null(await ray.Call(Echo, (object?)null));
        var roundTripped = await ray.Call(PyFunction.Of<Dictionary<string, object?>>("tasks", "echo"), dict);
        Assert.Equal(1L, Convert.ToInt64(roundTripped["a"], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("bytes", await ray.Call(PyFunction.Of<string>("tasks", "type_name"), new byte[] { 1 }));
        Assert.Equal("tuple", await ray.Call(PyFunction.Of<string>("tasks", "type_name"), (1, "two")));
        Assert.Equal("set", await ray.Call(PyFunction.Of<string>("tasks", "type_name"), new HashSet<long> { 1, 2 }));
    }

    [Fact]
    public async Task Call_PythonRaises_ThrowsRayTaskExceptionWithTraceback()
    {
        await using var ray = await fixture.ConnectAsync();

        var error = await Assert.ThrowsAsync<RayTaskException>(() => ray.Call(PyFunction.Of("tasks", "fail"), "boom").GetAsync());

        Assert.Equal("builtins.ValueError", error.PythonType);
        Assert.Equal("boom", error.PythonMessage);
        Assert.Contains("Traceback (most recent call last)", error.PythonTraceback);
        Assert.Contains("in fail", error.PythonTraceback);
        Assert.Contains("boom", error.Message);
    }

    [Fact]
    public async Task Call_UnknownModule_ThrowsWithTheImportError()
    {
        await using var ray = await fixture.ConnectAsync();

        var error = await Assert.ThrowsAsync<RayTaskException>(() => ray.Call(PyFunction.Of("no_such_module", "f")).GetAsync());

        Assert.Contains("no_such_module", error.Message);
    }

    [Fact]
    public async Task Call_ObjectRefArgument_IsReplacedByItsValue()
    {
        await using var ray = await fixture.ConnectAsync();
        var forty = await ray.PutAsync(40L);

        var sum = await ray.Call(Add, forty, 2);

        Assert.Equal(42L, sum);
    }

    [Fact]
    public async Task Call_ResultOfAnotherTask_ChainsWithoutWaiting()
    {
        await using var ray = await fixture.ConnectAsync();

        var first = ray.Call(Add, 1, 2);
        var second = ray.Call(Add, first, 3);
        var third = ray.Call(Add, second, first);

        Assert.Equal(9L, await third);
    }

    [Fact]
    public async Task Call_RefNestedInList_ArrivesAsARef()
    {
        await using var ray = await fixture.ConnectAsync();
        var value = await ray.PutAsync("inner");

        var hex = await ray.Call(PyFunction.Of<string>("tasks", "first_ref_hex"), new List<object> { value });
        var back = await ray.Call(PyFunction.Of<List<object?>>("tasks", "identity_list"), new List<object> { value });

        Assert.Equal(value.Hex, hex);
        var returnedRef = Assert.IsAssignableFrom<ObjectRef>(back[0]);
        Assert.Equal(value.Hex, returnedRef.Hex);
        Assert.Equal("inner", await returnedRef.As<string>(ray));
    }

    [Fact]
    public async Task Call_FailedArgument_FailsTheDependentTask()
    {
        await using var ray = await fixture.ConnectAsync();
        var failed = ray.Call(PyFunction.Of<long>("tasks", "fail"), "upstream");

        var error = await Assert.ThrowsAsync<RayTaskException>(() => ray.Call(Add, failed, 1).GetAsync());

        Assert.Contains("upstream", error.Message);
    }

    [Fact]
    public async Task Call_WorkingDirAndEnvVars_AreAppliedToWorkers()
    {
        await using var ray = await fixture.ConnectAsync(o => o.RuntimeEnv = new RuntimeEnv
        {
            WorkingDir = fixture.WorkingDir,
            EnvVars = new Dictionary<string, string> { ["RAYCLIENT_TEST_VAR"] = "from-dotnet" },
        });

        Assert.Equal("from-dotnet", await ray.Call(PyFunction.Of<string>("tasks", "env"), "RAYCLIENT_TEST_VAR"));
        Assert.Equal("shipped with the working dir", await ray.Call(PyFunction.Of<string>("tasks", "cwd_file"), "data.txt"));
    }

    [Fact]
    public async Task Call_ImpossibleResources_FailsInsteadOfWaiting()
    {
        await using var ray = await fixture.ConnectAsync();

        var error = await Assert.ThrowsAnyAsync<RayException>(() => ray.Task(Add, 1, 2).SetNumCpus(64).Remote().GetAsync());

        Assert.Contains("could never run", error.Message);
    }

    [Fact]
    public async Task Call_CustomResource_RunsWhenTheServerHasIt()
    {
        await using var ray = await fixture.ConnectAsync();

        var sum = await ray.Task(Add, 1, 2).SetResource("accelerator", 1).SetNumCpus(0.5).Remote();

        Assert.Equal(3L, sum);
    }

    [Fact]
    public async Task Call_WorkerDies_IsRetriedThenFailsWithWorkerCrashed()
    {
        await using var ray = await fixture.ConnectAsync();
        var before = fixture.Server.TaskExecutions;

        var error = await Assert.ThrowsAnyAsync<RayException>(() => ray.Task(PyFunction.Of("tasks", "crash")).SetMaxRetries(1).Remote().GetAsync());

        Assert.Contains("WorkerCrashedError", error.Message);
        Assert.True(fixture.Server.TaskExecutions - before >= 2, "the task should have run twice (one retry)");
        Assert.Equal(3L, await ray.Call(Add, 1, 2)); // the server goes on with a fresh worker
    }

    [Fact]
    public async Task Call_ManyPipelinedTasks_AllComplete()
    {
        await using var ray = await fixture.ConnectAsync();

        var refs = Enumerable.Range(0, 500).Select(i => ray.Call(Add, i, 1)).ToList();
        var results = await ray.GetAsync(refs);

        Assert.Equal(Enumerable.Range(1, 500).Select(i => (long)i), results);
    }

    [Fact]
    public async Task Call_LargeArgument_IsChunkedAndArrivesIntact()
    {
        await using var ray = await fixture.ConnectAsync();
        var payload = RandomNumberGenerator.GetBytes(12 * 1024 * 1024 + 3);

        var length = await ray.Call(PyFunction.Of<long>("tasks", "length"), payload);
        var big = await ray.Call(PyFunction.Of<byte[]>("tasks", "make_bytes"), 11 * 1024 * 1024);

        Assert.Equal(payload.Length, length);
        Assert.Equal(11 * 1024 * 1024, big.Length);
        Assert.All(big, b => Assert.Equal(7, b));
    }
}

internal static class ObjectRefTestExtensions
{
    public static Task<T> As<T>(this ObjectRef reference, RaySession session) =>
        session.GetAsync(((ObjectRef<object?>)reference).As<T>());
}
