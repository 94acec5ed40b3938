using Google.Protobuf;
using RayClient.Server.Protocol;
using RayClient.Server;

namespace RayClient.Tests.Server;

public sealed class ServerProtocolTests
{
    [Fact]
    public void ChunkCollector_InOrderChunks_Reassemble()
    {
        var collector = new ChunkCollector();

        Assert.Null(collector.Add(7, 0, 3, ByteString.CopyFrom(1, 2)));
        Assert.Null(collector.Add(7, 1, 3, ByteString.CopyFrom(3)));
        var whole = collector.Add(7, 2, 3, ByteString.CopyFrom(4, 5));

        Assert.NotNull(whole);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5 }, whole.Value.Data.ToArray());
    }

    [Fact]
    public void ChunkCollector_DuplicateChunk_IsSkipped_AndReplayFromZeroRestarts()
    {
        var collector = new ChunkCollector();
        collector.Add(1, 0, 3, ByteString.CopyFrom(1));
        collector.Add(1, 1, 3, ByteString.CopyFrom(2));

        Assert.Null(collector.Add(1, 1, 3, ByteString.CopyFrom(9))); // duplicate
        Assert.Null(collector.Add(1, 0, 3, ByteString.CopyFrom(1))); // replay starts over
        collector.Add(1, 1, 3, ByteString.CopyFrom(2));
        var whole = collector.Add(1, 2, 3, ByteString.CopyFrom(3));

        Assert.Equal(new byte[] { 1, 2, 3 }, whole!.Value.Data.ToArray());
    }

    [Fact]
    public void ChunkCollector_GapOrMissingTotals_AreProtocolErrors()
    {
        var collector = new ChunkCollector();
        collector.Add(1, 0, 3, ByteString.CopyFrom(1));

        Assert.Throws<DatapathProtocolException>(() => collector.Add(1, 2, 3, ByteString.CopyFrom(3)));
        Assert.Throws<DatapathProtocolException>(() => new ChunkCollector().Add(2, 0, 0, ByteString.Empty));
    }

    [Fact]
    public void ChunkCollector_PayloadOverTheLimit_IsDroppedAndReportedAtItsLastChunk_ThenTheNextOneIsCollected()
    {
        var collector = new ChunkCollector(maxSize: 4);

        Assert.Null(collector.Add(3, 0, 3, ByteString.CopyFrom(1, 2, 3)));
        Assert.Null(collector.Add(3, 1, 3, ByteString.CopyFrom(4, 5))); // 5 bytes: over the limit
        var refused = collector.Add(3, 2, 3, ByteString.CopyFrom(6));

        Assert.Equal(6, refused!.Value.TooLargeSize);
        Assert.True(refused.Value.Data.IsEmpty);
        var next = collector.Add(4, 0, 1, ByteString.CopyFrom(7, 8));
        Assert.Equal(0, next!.Value.TooLargeSize);
        Assert.Equal(new byte[] { 7, 8 }, next.Value.Data.ToArray());
    }

    [Fact]
    public void ChunkCollector_DeclaredSizeOverTheLimit_IsRefusedWithoutKeepingAnything()
    {
        var collector = new ChunkCollector(maxSize: 4);

        Assert.Null(collector.Add(9, 0, 2, ByteString.CopyFrom(1), rented: null, declaredSize: 3L << 30));
        var refused = collector.Add(9, 1, 2, ByteString.CopyFrom(2), rented: null, declaredSize: 3L << 30);

        Assert.Equal(3L << 30, refused!.Value.TooLargeSize);
    }

    [Fact]
    public async Task ResponseCache_ReplayedRequest_GetsTheFirstAnswer_UntilAcknowledged()
    {
        var cache = new ResponseCache();
        Assert.Null(cache.TryBegin(5));
        var first = new DataResponse { ReqId = 5, Put = new PutResponse { Valid = true, Id = ByteString.CopyFrom(1) } };
        cache.Complete(5, first);

        var replay = cache.TryBegin(5);

        Assert.NotNull(replay);
        Assert.Same(first, await replay);
        cache.Acknowledge(5);
        Assert.Equal(0, cache.Count);
        Assert.Throws<DatapathProtocolException>(() => { _ = cache.TryBegin(5); });
        Assert.Null(cache.TryBegin(6));
    }
}
