using System.Buffers;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Grpc.Core;
using Ray.Rpc;

namespace RayClient.Session;

/// <summary>
/// Datapath marshallers that read the one big field of a message — <c>GetResponse.data</c> on the
/// client, <c>PutRequest.data</c> on the server — into a buffer rented from the shared array pool
/// instead of a fresh 5 MiB array per chunk. Fresh large arrays cost a page fault per 4 KiB (about
/// 0.3-0.5 GB/s here), which capped 100 MiB transfers far below the network's speed. Every other
/// message, and any message with fields this reader does not expect, goes through protobuf's parser.
/// The wire format is protobuf's; only the allocation differs.
/// </summary>
internal static class PooledWire
{
    private const int PoolThreshold = 64 * 1024;
    private static readonly ConditionalWeakTable<IMessage, byte[]> Rented = new();

    /// <summary>The Datapath method with pooled response decoding (client side).</summary>
    public static readonly Method<DataRequest, DataResponse> ClientDatapath = new(
        MethodType.DuplexStreaming,
        "ray.rpc.RayletDataStreamer",
        "Datapath",
        Marshallers.Create<DataRequest>(Serialize, context => DataRequest.Parser.ParseFrom(context.PayloadAsReadOnlySequence())),
        Marshallers.Create<DataResponse>(Serialize, context => ParseResponse(context.PayloadAsReadOnlySequence())));

    /// <summary>The Datapath method with pooled request decoding (server side).</summary>
    public static readonly Method<DataRequest, DataResponse> ServerDatapath = new(
        MethodType.DuplexStreaming,
        "ray.rpc.RayletDataStreamer",
        "Datapath",
        Marshallers.Create<DataRequest>(Serialize, context => ParseRequest(context.PayloadAsReadOnlySequence())),
        Marshallers.Create<DataResponse>(Serialize, context => DataResponse.Parser.ParseFrom(context.PayloadAsReadOnlySequence())));

    /// <summary>
    /// Takes the pooled buffer behind <paramref name="message"/>'s big field, if it has one; the
    /// caller returns it to <see cref="ArrayPool{T}.Shared"/> once the bytes are no longer used.
    /// </summary>
    public static byte[]? TakeRentedBuffer(IMessage message)
    {
        if (Rented.TryGetValue(message, out var buffer))
        {
            Rented.Remove(message);
            return buffer;
        }

        return null;
    }

    private static void Serialize<T>(T message, SerializationContext context)
        where T : IMessage<T>, IBufferMessage
    {
        context.SetPayloadLength(message.CalculateSize());
        message.WriteTo(context.GetBufferWriter());
        context.Complete();
    }

    internal static DataResponse ParseResponse(ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var response = new DataResponse();
        while (!reader.End)
        {
            if (!TryReadTag(ref reader, out var field, out var wireType))
            {
                return DataResponse.Parser.ParseFrom(payload);
            }

            if (field == 1 && wireType == 0 && TryReadVarint(ref reader, out var reqId))
            {
                response.ReqId = (int)reqId;
            }
            else if (field == 2 && wireType == 2 && TryReadLength(ref reader, out var length) && reader.Remaining >= length)
            {
                var get = ParseGetResponse(payload.Slice(reader.Position, length));
                reader.Advance(length);
                if (get is null)
                {
                    return DataResponse.Parser.ParseFrom(payload);
                }

                response.Get = get;
            }
            else
            {
                return DataResponse.Parser.ParseFrom(payload);
            }
        }

        return response;
    }

    private static GetResponse? ParseGetResponse(ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var get = new GetResponse();
        while (!reader.End)
        {
            if (!TryReadTag(ref reader, out var field, out var wireType))
            {
                return null;
            }

            switch (field, wireType)
            {
                case (1, 0) when TryReadVarint(ref reader, out var valid):
                    get.Valid = valid != 0;
                    break;
                case (2, 2) when TryReadLength(ref reader, out var length) && reader.Remaining >= length:
                    get.Data = ReadBytes(ref reader, length, get);
                    break;
                case (3, 2) when TryReadLength(ref reader, out var length) && reader.Remaining >= length:
                    get.Error = ByteString.CopyFrom(payload.Slice(reader.Position, length).ToArray());
                    reader.Advance(length);
                    break;
                case (4, 0) when TryReadVarint(ref reader, out var chunkId):
                    get.ChunkId = (int)chunkId;
                    break;
                case (5, 0) when TryReadVarint(ref reader, out var totalChunks):
                    get.TotalChunks = (int)totalChunks;
                    break;
                case (6, 0) when TryReadVarint(ref reader, out var totalSize):
                    get.TotalSize = totalSize;
                    break;
                default:
                    ReturnRented(get);
                    return null;
            }
        }

        return get;
    }

    internal static DataRequest ParseRequest(ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var request = new DataRequest();
        while (!reader.End)
        {
            if (!TryReadTag(ref reader, out var field, out var wireType))
            {
                return DataRequest.Parser.ParseFrom(payload);
            }

            if (field == 1 && wireType == 0 && TryReadVarint(ref reader, out var reqId))
            {
                request.ReqId = (int)reqId;
            }
            else if (field == 3 && wireType == 2 && TryReadLength(ref reader, out var length) && reader.Remaining >= length)
            {
                var put = ParsePutRequest(payload.Slice(reader.Position, length));
                reader.Advance(length);
                if (put is null)
                {
                    return DataRequest.Parser.ParseFrom(payload);
                }

                request.Put = put;
            }
            else
            {
                return DataRequest.Parser.ParseFrom(payload);
            }
        }

        return request;
    }

    private static PutRequest? ParsePutRequest(ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var put = new PutRequest();
        while (!reader.End)
        {
            if (!TryReadTag(ref reader, out var field, out var wireType))
            {
                return null;
            }

            switch (field, wireType)
            {
                case (1, 2) when TryReadLength(ref reader, out var length) && reader.Remaining >= length:
                    put.Data = ReadBytes(ref reader, length, put);
                    break;
                case (2, 2) when TryReadLength(ref reader, out var length) && reader.Remaining >= length:
                    put.ClientRefId = ByteString.CopyFrom(payload.Slice(reader.Position, length).ToArray());
                    reader.Advance(length);
                    break;
                case (3, 0) when TryReadVarint(ref reader, out var chunkId):
                    put.ChunkId = (int)chunkId;
                    break;
                case (4, 0) when TryReadVarint(ref reader, out var totalChunks):
                    put.TotalChunks = (int)totalChunks;
                    break;
                case (5, 0) when TryReadVarint(ref reader, out var totalSize):
                    put.TotalSize = (long)totalSize;
                    break;
                case (6, 2) when TryReadLength(ref reader, out var length) && reader.Remaining >= length:
                    put.OwnerId = ByteString.CopyFrom(payload.Slice(reader.Position, length).ToArray());
                    reader.Advance(length);
                    break;
                default:
                    ReturnRented(put);
                    return null;
            }
        }

        return put;
    }

    private static ByteString ReadBytes(ref SequenceReader<byte> reader, int length, IMessage owner)
    {
        if (length < PoolThreshold)
        {
            var small = new byte[length];
            reader.TryCopyTo(small);
            reader.Advance(length);
            return UnsafeByteOperations.UnsafeWrap(small);
        }

        ReturnRented(owner); // a repeated field: keep the last, like protobuf
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        reader.TryCopyTo(buffer.AsSpan(0, length));
        reader.Advance(length);
        Rented.AddOrUpdate(owner, buffer);
        return UnsafeByteOperations.UnsafeWrap(buffer.AsMemory(0, length));
    }

    private static void ReturnRented(IMessage owner)
    {
        if (TakeRentedBuffer(owner) is { } buffer)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static bool TryReadTag(ref SequenceReader<byte> reader, out int field, out int wireType)
    {
        field = 0;
        wireType = 0;
        if (!TryReadVarint(ref reader, out var tag) || tag == 0 || tag > int.MaxValue)
        {
            return false;
        }

        field = (int)(tag >> 3);
        wireType = (int)(tag & 7);
        return true;
    }

    private static bool TryReadLength(ref SequenceReader<byte> reader, out int length)
    {
        length = 0;
        if (!TryReadVarint(ref reader, out var value) || value > int.MaxValue)
        {
            return false;
        }

        length = (int)value;
        return true;
    }

    private static bool TryReadVarint(ref SequenceReader<byte> reader, out ulong value)
    {
        value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out var b))
            {
                return false;
            }

            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return true;
            }
        }

        return false;
    }
}
