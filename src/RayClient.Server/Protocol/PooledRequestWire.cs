using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using RayClient.Shared;

namespace RayClient.Server.Protocol;

/// <summary>
/// The server's Datapath method, with a request marshaller that reads <c>PutRequest.data</c> into a
/// buffer rented from the shared array pool instead of a fresh 5 MiB array per chunk (the client
/// does the same for <c>GetResponse.data</c>; the reading helpers are shared source). Every other
/// message, and any message with fields this reader does not expect, goes through protobuf's parser.
/// </summary>
internal static class PooledRequestWire
{
    /// <summary>The Datapath method with pooled request decoding.</summary>
    public static readonly Method<DataRequest, DataResponse> ServerDatapath = new(
        MethodType.DuplexStreaming,
        "ray.rpc.RayletDataStreamer",
        "Datapath",
        Marshallers.Create<DataRequest>(PooledWireReader.Serialize, context => ParseRequest(context.PayloadAsReadOnlySequence())),
        Marshallers.Create<DataResponse>(PooledWireReader.Serialize, context => DataResponse.Parser.ParseFrom(context.PayloadAsReadOnlySequence())));

    /// <summary>
    /// Takes the pooled buffer behind a put's data, if it has one; the caller returns it to
    /// <see cref="ArrayPool{T}.Shared"/> once the bytes are no longer used.
    /// </summary>
    public static byte[]? TakeRentedBuffer(IMessage message) => PooledWireReader.TakeRentedBuffer(message);

    internal static DataRequest ParseRequest(ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var request = new DataRequest();
        while (!reader.End)
        {
            if (!PooledWireReader.TryReadTag(ref reader, out var field, out var wireType))
            {
                return DataRequest.Parser.ParseFrom(payload);
            }

            if (field == 1 && wireType == 0 && PooledWireReader.TryReadVarint(ref reader, out var reqId))
            {
                request.ReqId = (int)reqId;
            }
            else if (field == 3 && wireType == 2 && PooledWireReader.TryReadLength(ref reader, out var length) && reader.Remaining >= length)
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
            if (!PooledWireReader.TryReadTag(ref reader, out var field, out var wireType))
            {
                return null;
            }

            switch (field, wireType)
            {
                case (1, 2) when PooledWireReader.TryReadLength(ref reader, out var length) && reader.Remaining >= length:
                    put.Data = PooledWireReader.ReadBytes(ref reader, length, put);
                    break;
                case (2, 2) when PooledWireReader.TryReadLength(ref reader, out var length) && reader.Remaining >= length:
                    put.ClientRefId = UnsafeByteOperations.UnsafeWrap(payload.Slice(reader.Position, length).ToArray());
                    reader.Advance(length);
                    break;
                case (3, 0) when PooledWireReader.TryReadVarint(ref reader, out var chunkId):
                    put.ChunkId = (int)chunkId;
                    break;
                case (4, 0) when PooledWireReader.TryReadVarint(ref reader, out var totalChunks):
                    put.TotalChunks = (int)totalChunks;
                    break;
                case (5, 0) when PooledWireReader.TryReadVarint(ref reader, out var totalSize):
                    put.TotalSize = (long)totalSize;
                    break;
                case (6, 2) when PooledWireReader.TryReadLength(ref reader, out var length) && reader.Remaining >= length:
                    put.OwnerId = UnsafeByteOperations.UnsafeWrap(payload.Slice(reader.Position, length).ToArray());
                    reader.Advance(length);
                    break;
                default:
                    PooledWireReader.ReturnRented(put);
                    return null;
            }
        }

        return put;
    }
}
