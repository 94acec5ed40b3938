using System.Buffers;
using Google.Protobuf;
using Ray.Rpc;
using RayClient.Session;

namespace RayClient.Tests.Session;

public sealed class PooledWireTests
{
    [Theory]
    [InlineData(10)]
    [InlineData(5 * 1024 * 1024)]
    public void ParseResponse_GetChunk_MatchesProtobufAndPoolsLargeData(int size)
    {
        var data = new byte[size];
        Random.Shared.NextBytes(data);
        var original = new DataResponse
        {
            ReqId = 77,
            Get = new GetResponse { Valid = true, Data = ByteString.CopyFrom(data), ChunkId = 3, TotalChunks = 9, TotalSize = 123_456_789_012 },
        };

        var parsed = PooledWire.ParseResponse(Split(original.ToByteArray()));

        Assert.Equal(original, parsed);
        var rented = PooledWire.TakeRentedBuffer(parsed.Get);
        Assert.Equal(size >= 64 * 1024, rented is not null);
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    [Fact]
    public void ParseResponse_OtherMessages_FallBackToProtobuf()
    {
        var ticket = new DataResponse { ReqId = 5, TaskTicket = new ClientTaskTicket { Valid = true, ReturnIds = { ByteString.CopyFrom(1, 2, 3) } } };
        var error = new DataResponse { ReqId = -3, Get = new GetResponse { Valid = false, Error = ByteString.CopyFromUtf8("boom") } };

        Assert.Equal(ticket, PooledWire.ParseResponse(Split(ticket.ToByteArray())));
        Assert.Equal(error, PooledWire.ParseResponse(Split(error.ToByteArray())));
    }

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

        var parsed = PooledWire.ParseRequest(Split(original.ToByteArray()));

        Assert.Equal(original, parsed);
        Assert.NotNull(PooledWire.TakeRentedBuffer(parsed.Put));
        Assert.Equal(task, PooledWire.ParseRequest(Split(task.ToByteArray())));
    }

    /// <summary>Splits a payload into several segments, as a transport may deliver it.</summary>
    private static ReadOnlySequence<byte> Split(byte[] bytes) =>
        bytes.Length < 3
            ? new ReadOnlySequence<byte>(bytes)
            : RayClient.Serialization.PickledData.Build([bytes.AsMemory(0, bytes.Length / 3), bytes.AsMemory(bytes.Length / 3, bytes.Length / 3), bytes.AsMemory(2 * (bytes.Length / 3))]);
}
