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

    /// <summary>Splits a payload into several segments, as a transport may deliver it.</summary>
    private static ReadOnlySequence<byte> Split(byte[] bytes) =>
        bytes.Length < 3
            ? new ReadOnlySequence<byte>(bytes)
            : RayClient.Serialization.PickledData.Build([bytes.AsMemory(0, bytes.Length / 3), bytes.AsMemory(bytes.Length / 3, bytes.Length / 3), bytes.AsMemory(2 * (bytes.Length / 3))]);
}
