using System.Security.Cryptography;
using RayClient.FunctionalTests.Infrastructure;

namespace RayClient.FunctionalTests;

[Collection(ServerCollection.Name)]
public sealed class ObjectTests(ServerFixture fixture)
{
    [Fact]
    public async Task PutAsync_ThenGetAsync_ReturnsTheValue()
    {
        await using var ray = await fixture.ConnectAsync();

        var reference = await ray.PutAsync(new List<object?> { 1L, "two", 3.5, null, new byte[] { 4 } });
        var value = await reference.GetAsync();

        Assert.Equal(5, value.Count);
        Assert.Equal("two", value[1]);
        Assert.Equal(3.5, value[2]);
        Assert.Null(value[3]);
        Assert.Equal(new byte[] { 4 }, value[4]);
    }

    [Fact]
    public async Task PutAsync_HundredMebibytes_ComesBackIntact()
    {
        await using var ray = await fixture.ConnectAsync();
        var payload = new byte[100 * 1024 * 1024];
        Random.Shared.NextBytes(payload);
        var expected = SHA256.HashData(payload);

        var reference = await ray.PutAsync(payload);
        var back = await reference.GetAsync();

        Assert.Equal(payload.Length, back.Length);
        Assert.Equal(expected, SHA256.HashData(back));
        Assert.Equal(payload.Length, await ray.Call(PyFunction.Of<long>("tasks", "length"), reference));
    }

    [Fact]
    public async Task GetAsync_Timeout_ThrowsRayTimeoutException()
    {
        await using var ray = await fixture.ConnectAsync();
        var slow = ray.Call(PyFunction.Of<long>("tasks", "sleep_then"), 30, 1);

        var error = await Assert.ThrowsAsync<RayTimeoutException>(() => slow.GetAsync(TimeSpan.FromMilliseconds(200)));

        Assert.Contains("not ready", error.Message);
    }

    [Fact]
    public async Task GetAsync_Cancelled_ThrowsOperationCanceled()
    {
        await using var ray = await fixture.ConnectAsync();
        var slow = ray.Call(PyFunction.Of<long>("tasks", "sleep_then"), 30, 1);
        using var cts = new CancellationTokenSource();

        var get = slow.GetAsync(cancellationToken: cts.Token);
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => get);
    }

    [Fact]
    public async Task WaitAsync_SomeReady_SplitsReadyAndUnready()
    {
        await using var ray = await fixture.ConnectAsync();
        var fast = await ray.PutAsync(1L);
        var slow = ray.Call(PyFunction.Of<long>("tasks", "sleep_then"), 30, 2);

        var result = await ray.WaitAsync([fast, slow], numReturns: 1, timeout: TimeSpan.FromSeconds(10));

        Assert.Equal([fast], result.Ready);
        Assert.Equal([slow], result.Unready);
    }

    [Fact]
    public async Task WaitAsync_TimeoutBeforeEnoughReady_ReturnsWhatIsReady()
    {
        await using var ray = await fixture.ConnectAsync();
        var fast = await ray.PutAsync(1L);
        var slow = ray.Call(PyFunction.Of<long>("tasks", "sleep_then"), 30, 2);

        var result = await ray.WaitAsync([fast, slow], numReturns: 2, timeout: TimeSpan.FromMilliseconds(300));

        _ = Assert.Single(result.Ready);
        _ = Assert.Single(result.Unready);
    }

    [Fact]
    public async Task WaitAsync_BadArguments_ThrowBeforeSending()
    {
        await using var ray = await fixture.ConnectAsync();
        var one = await ray.PutAsync(1L);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => ray.WaitAsync([one], numReturns: 2));
        await Assert.ThrowsAsync<ArgumentException>(() => ray.WaitAsync([one, one], numReturns: 1));
    }

    [Fact]
    public async Task GetAsync_RefOfAnotherSession_IsRejected()
    {
        await using var first = await fixture.ConnectAsync();
        await using var second = await fixture.ConnectAsync();
        var reference = await first.PutAsync(1L);

        await Assert.ThrowsAsync<ArgumentException>(() => second.GetAsync(reference));
    }

    [Fact]
    public async Task DroppedRefs_AreReleasedOnTheServer()
    {
        await using var ray = await fixture.ConnectAsync();
        var session = fixture.Server.State.Sessions.Single(s => s.ClientId == ray.ClientId);
        await PutAndDropAsync(ray, 50);
        var held = session.HeldObjects;

        await Eventually.TrueAsync(
            () =>
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                return session.HeldObjects < held - 40;
            },
            "the server released the dropped refs");
    }

    [Fact]
    public async Task DisposeAsync_ReleasesTheObjectAtOnce_AndTheRefIsUnusableAfterwards()
    {
        await using var ray = await fixture.ConnectAsync();
        var session = fixture.Server.State.Sessions.Single(s => s.ClientId == ray.ClientId);
        var reference = await ray.PutAsync(new byte[1 << 20]);
        var held = session.HeldObjects;

        await reference.DisposeAsync();
        // The release is pipelined on the Datapath, which the server works through in order:
        // once a later put is answered, the release has been applied.
        var later = await ray.PutAsync(0L);

        Assert.True(reference.IsReleased);
        Assert.Equal(held, session.HeldObjects); // one released, one added
        await Assert.ThrowsAsync<ObjectDisposedException>(() => reference.GetAsync());
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await ray.Call(PyFunction.Of<long>("tasks", "length"), reference));
        Assert.Equal(0L, await later);
        await reference.DisposeAsync(); // twice is harmless
    }

    [Fact]
    public async Task As_MakesARefOfItsOwn_ThatKeepsTheObjectAfterTheOriginalIsReleased()
    {
        await using var ray = await fixture.ConnectAsync();
        var original = await ray.PutAsync(7L);
        var typed = original.As<int>();

        await original.DisposeAsync();

        Assert.Equal(7, await typed.GetAsync(TimeSpan.FromSeconds(30)));
        Assert.Throws<ObjectDisposedException>(() => original.As<long>());
    }

    [Fact]
    public async Task DisposeAsync_AnotherRefToTheSameObject_KeepsItAlive()
    {
        await using var ray = await fixture.ConnectAsync();
        var reference = await ray.PutAsync(41L);
        var back = await ray.Call(PyFunction.Of<List<object?>>("tasks", "identity_list"), new List<object> { reference });
        var sameObject = ((ObjectRef<object?>)back.Single()!).As<long>();
        Assert.Equal(reference, sameObject);

        await reference.DisposeAsync();

        Assert.Equal(41L, await sameObject.GetAsync(TimeSpan.FromSeconds(30)));
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static async Task PutAndDropAsync(RaySession ray, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await ray.PutAsync(i);
        }
    }
}
