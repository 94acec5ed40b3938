using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using RayClient.Server;
using Xunit;

namespace RayClient.Tests.Server;

/// <summary>
/// A Datapath stream's handle may be aborted by a newer stream of the same client or by a fault
/// hook at any moment, including after its handler has returned and Kestrel has recycled the
/// HttpContext. CI caught that race once: the new handler threw ObjectDisposedException and every
/// later reconnect of the session failed the same way until the grace period ran out.
/// </summary>
public sealed class StreamHandleTests
{
    [Fact]
    public void Abort_WhileServing_ResetsTheStreamAndCancelsTheHandler()
    {
        var (context, lifetime) = NewContext();
        using var cts = new CancellationTokenSource();
        var handle = new StreamHandle(cts, context);

        handle.Abort();

        Assert.Equal(1, lifetime.Aborts);
        Assert.True(cts.IsCancellationRequested);
        Assert.False(handle.Finished.Task.IsCompleted);
    }

    [Fact]
    public void Abort_AfterTheHandlerEnded_TouchesNothing()
    {
        var (context, lifetime) = NewContext();
        var cts = new CancellationTokenSource();
        var handle = new StreamHandle(cts, context);

        handle.End();
        cts.Dispose(); // the handler's `using` has run
        lifetime.Recycled = true; // and Kestrel has taken the context back

        handle.Abort(); // must neither throw nor reach the recycled context

        Assert.Equal(0, lifetime.Aborts);
        Assert.True(handle.Finished.Task.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Abort_RacingEnd_NeverReachesARecycledContext()
    {
        for (var round = 0; round < 2_000; round++)
        {
            var (context, lifetime) = NewContext();
            var cts = new CancellationTokenSource();
            var handle = new StreamHandle(cts, context);
            using var start = new Barrier(2);
            var aborter = Task.Run(() =>
            {
                start.SignalAndWait();
                handle.Abort();
            });

            start.SignalAndWait();
            handle.End();
            lifetime.Recycled = true; // from here on an abort would hit another request
            cts.Dispose();
            await aborter;
            Assert.True(lifetime.Aborts <= 1);
        }
    }

    private static (HttpContext Context, RecordingLifetime Lifetime) NewContext()
    {
        var lifetime = new RecordingLifetime();
        var features = new FeatureCollection();
        features.Set<IHttpRequestLifetimeFeature>(lifetime);
        return (new DefaultHttpContext(features), lifetime);
    }

    private sealed class RecordingLifetime : IHttpRequestLifetimeFeature
    {
        private int _aborts;

        public volatile bool Recycled;

        public int Aborts => Volatile.Read(ref _aborts);

        public CancellationToken RequestAborted { get; set; }

        public void Abort()
        {
            ObjectDisposedException.ThrowIf(Recycled, this);
            Interlocked.Increment(ref _aborts);
        }
    }
}
