using System.Buffers;
using Google.Protobuf;
using RayClient.Server.Protocol;

namespace RayClient.Tests.Server;

public sealed class PooledRequestWireTests
{
    [Fact]
    public void ParseRequest_PutChunk_MatchesProtobuf()
    {
        var data = new byte[200_000];
        Random.Shared.NextBytes(data);
        var original = new DataRequest
        {
            ReqId = int.MaxValue,
            Put = new PutRequest { Data = ByteString.CopyFrom(data), ClientRefId = ByteString.CopyFrom(0xCC, 1), ChunkId = 0, TotalChunks = 1, TotalSize = data.Length, OwnerId = ByteString.CopyFrom(9) },
        };
        var task = new DataRequest { ReqId = 2, Task = new ClientTask { Name = "f", Data = ByteString.CopyFrom(1, 2), TotalChunks = 1 } };

        var parsed = PooledRequestWire.ParseRequest(Split(original.ToByteArray()));

        Assert.Equal(original, parsed);
        Assert.NotNull(PooledRequestWire.TakeRentedBuffer(parsed.Put));
        Assert.Equal(task, PooledRequestWire.ParseRequest(Split(task.ToByteArray())));
    }

    /// <summary>Splits a payload into several segments, as a transport may deliver it.</summary>
    private static ReadOnlySequence<byte> Split(byte[] bytes) =>
        RayClient.Serialization.PickledData.Build([bytes.AsMemory(0, bytes.Length / 3), bytes.AsMemory(bytes.Length / 3, bytes.Length / 3), bytes.AsMemory(2 * (bytes.Length / 3))]);
}
