using Google.Protobuf;
using Ray.Rpc;
using RayClient.Session;

namespace RayClient.Tests.Session;

public sealed class PendingRequestTests
{
    private static PendingGet AsyncGet() => new(new DataRequest { Get = new GetRequest { Asynchronous = true } });

    [Fact]
    public void AddGetChunk_ObjectLargerThanAnArray_IsATypedErrorNamingTheSize()
    {
        var pending = AsyncGet();
        var size = 3UL << 30;

        var error = Assert.Throws<RayObjectTooLargeException>(() => pending.AddGetChunk(
            new GetResponse { Valid = true, ChunkId = 0, TotalChunks = 615, TotalSize = size, Data = ByteString.CopyFrom(1, 2, 3) }));

        Assert.Equal((long)size, error.Size);
        Assert.Contains("3.22 GB", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddGetChunk_ChunksBeyondTheAnnouncedSize_AreAProtocolError()
    {
        var pending = AsyncGet();
        Assert.Null(pending.AddGetChunk(new GetResponse { Valid = true, ChunkId = 0, TotalChunks = 2, TotalSize = 4, Data = ByteString.CopyFrom(1, 2, 3) }));

        var error = Assert.Throws<RayConnectionException>(() => pending.AddGetChunk(
            new GetResponse { Valid = true, ChunkId = 1, TotalChunks = 2, TotalSize = 4, Data = ByteString.CopyFrom(new byte[64]) }));

        Assert.False(error.IsTransient);
    }

    [Fact]
    public void AddGetChunk_InOrderChunks_AssembleTheObject()
    {
        var pending = AsyncGet();
        Assert.Null(pending.AddGetChunk(new GetResponse { Valid = true, ChunkId = 0, TotalChunks = 2, TotalSize = 5, Data = ByteString.CopyFrom(1, 2, 3) }));

        using var whole = pending.AddGetChunk(new GetResponse { Valid = true, ChunkId = 1, TotalChunks = 2, TotalSize = 5, Data = ByteString.CopyFrom(4, 5) });

        Assert.Equal(new byte[] { 1, 2, 3, 4, 5 }, whole!.Data.ToArray());
        Assert.Equal(2, pending.Request.Get.StartChunkId); // a replay would resume after the last chunk
    }
}
