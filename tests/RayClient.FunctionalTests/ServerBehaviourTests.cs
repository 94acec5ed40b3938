using Google.Protobuf;
using Grpc.Core;
using Ray.Rpc;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Serialization;
using RayClient.Session;

namespace RayClient.FunctionalTests;

[Collection(ServerCollection.Name)]
public sealed class ServerBehaviourTests(ServerFixture fixture)
{
    [Fact]
    public async Task Tasks_NeedingAllCpus_RunOneAtATime()
    {
        await using var ray = await fixture.ConnectAsync();
        var interval = PyFunction.Of<(double Start, double End)>("tasks", "interval");

        var a = ray.Task(interval, 0.3).SetNumCpus(2).Remote();
        var b = ray.Task(interval, 0.3).SetNumCpus(2).Remote();
        var (first, second) = (await a, await b);

        var (early, late) = first.Start <= second.Start ? (first, second) : (second, first);
        Assert.True(late.Start >= early.End, $"tasks needing 2 of 2 CPUs overlapped: {early} and {late}");
    }

    [Fact]
    public async Task AvailableResources_DropWhileATaskRuns()
    {
        await using var ray = await fixture.ConnectAsync();
        var slow = ray.Task(PyFunction.Of<long>("tasks", "sleep_then"), 30, 1).SetResource("accelerator", 1).SetNumCpus(0).Remote();

        await Eventually.TrueAsync(
            async () => (await ray.GetAvailableResourcesAsync()).GetValueOrDefault("accelerator") == 0,
            "the running task holds the accelerator");
        var total = await ray.GetClusterResourcesAsync();
        Assert.Equal(1, total["accelerator"]);
        GC.KeepAlive(slow);
    }

    [Fact]
    public async Task WorkingDir_SameContent_IsUploadedOnce()
    {
        await using (await fixture.ConnectAsync())
        {
        }

        var puts = fixture.Server.State.Kv.PutCount;
        await using var second = await fixture.ConnectAsync();

        Assert.Equal(puts, fixture.Server.State.Kv.PutCount);
        Assert.Equal(3L, await second.Call(PyFunction.Of<long>("tasks", "add"), 1, 2));
    }

    [Fact]
    public async Task GetAsync_IdTheServerDoesNotKnow_ThrowsObjectNotFound()
    {
        await using var ray = await fixture.ConnectAsync();
        var bogus = new ObjectRef<long>(ray, Task.FromResult(new RayId(new byte[28])));

        var error = await Assert.ThrowsAsync<RayObjectNotFoundException>(() => bogus.GetAsync());

        Assert.Contains("not found", error.Message);
    }

    [Fact]
    public async Task GetObjectRpc_SeveralIds_ReturnsOnePickledListInRequestOrder()
    {
        // The unary path Python clients use for ray.get([...]) (spec §5.2).
        await using var ray = await fixture.ConnectAsync();
        var first = await ray.PutAsync(new List<object?> { "shared", "shared" });
        var second = ray.Call(PyFunction.Of("tasks", "echo"), new Dictionary<string, object?> { ["k"] = 1L });
        var ids = new[] { await first.GetIdAsync(), await second.GetIdAsync() };
        var request = new GetRequest { Timeout = 10 };
        request.Ids.AddRange(ids.Select(h => ByteString.CopyFrom(Convert.FromHexString(h))));

        using var call = ray.Connection.Driver.GetObject(request, ray.Connection.UnaryOptions(CancellationToken.None));
        var chunks = new List<GetResponse>();
        await foreach (var chunk in call.ResponseStream.ReadAllAsync())
        {
            chunks.Add(chunk);
        }

        var response = Assert.Single(chunks);
        Assert.True(response.Valid);
        var list = Assert.IsType<List<object?>>(PickleReader.Read(response.Data.Memory));
        Assert.Equal(2, list.Count);
        Assert.Equal(new List<object?> { "shared", "shared" }, list[0]);
        Assert.Equal(1, Assert.IsType<Dictionary<object, object?>>(list[1])["k"]);
    }

    [Fact]
    public async Task Logs_WhatATaskPrints_ReachTheClient()
    {
        var lines = new List<RayLogLine>();
        await using var ray = await fixture.ConnectAsync(o => o.LogSink = line =>
        {
            lock (lines)
            {
                lines.Add(line);
            }
        });

        await ray.Call(PyFunction.Of<string>("tasks", "print_and_return"), "hello from python");

        await Eventually.TrueAsync(
            () =>
            {
                lock (lines)
                {
                    return lines.Any(l => l.Message.Contains("hello from python", StringComparison.Ordinal));
                }
            },
            "the printed line arrived");
    }

    [Fact]
    public async Task Logs_StdoutAndStderr_ArriveWithRaysLevels()
    {
        // Ray's log stream: stdout lines with level -1 (name "stdout"), stderr with -2 ("stderr").
        var lines = new List<RayLogLine>();
        await using var ray = await fixture.ConnectAsync(o => o.LogSink = line =>
        {
            lock (lines)
            {
                lines.Add(line);
            }
        });

        await ray.Call(PyFunction.Of<string>("tasks", "print_to_both"), "to stdout 7f3a", "to stderr 7f3a");

        RayLogLine? Find(string text)
        {
            lock (lines)
            {
                return lines.FirstOrDefault(l => l.Message.Contains(text, StringComparison.Ordinal));
            }
        }

        await Eventually.TrueAsync(() => Find("to stdout 7f3a") is not null && Find("to stderr 7f3a") is not null, "both lines arrived");
        var stdout = Find("to stdout 7f3a")!;
        var stderr = Find("to stderr 7f3a")!;
        Assert.Equal((-1, "stdout"), (stdout.Level, stdout.Source));
        Assert.Equal((-2, "stderr"), (stderr.Level, stderr.Source));
    }
}
