using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using Ray.Rpc;
using RayClient.Shared;

namespace RayClient.Session;

/// <summary>
/// The client's Datapath method, with a response marshaller that reads <c>GetResponse.data</c> into
/// a buffer rented from the shared array pool instead of a fresh 5 MiB array per chunk. Fresh large arrays cost a page fault per 4 KiB (about
/// 0.3-0.5 GB/s here), which capped 100 MiB transfers far below the network's speed. Every other
/// message, and any message with fields this reader does not expect, goes through protobuf's parser.
/// The wire format is protobuf's; only the allocation differs. The server reads <c>PutRequest.data</c>
/// the same way (RayClient.Server's PooledRequestWire); the reading helpers are shared source
/// (src/Shared/Protocol/PooledWireReader.cs).
/// </summary>
internal static class PooledWire
{
    /// <summary>The Datapath method with pooled response decoding (client side).</summary>
    public static readonly Method<DataRequest, DataResponse> ClientDatapath = new(
        MethodType.DuplexStreaming,
        "ray.rpc.RayletDataStreamer",
        "Datapath",
        Marshallers.Create<DataRequest>(PooledWireReader.Serialize, context => DataRequest.Parser.ParseFrom(context.PayloadAsReadOnlySequence())),
        Marshallers.Create<DataResponse>(PooledWireReader.Serialize, context => ParseResponse(context.PayloadAsReadOnlySequence())));

    /// <summary>
    /// Takes the pooled buffer behind <paramref name="message"/>'s big field, if it has one; the
    /// caller returns it to <see cref="ArrayPool{T}.Shared"/> once the bytes are no longer used.
    /// </summary>
    public static byte[]? TakeRentedBuffer(IMessage message) => PooledWireReader.TakeRentedBuffer(message);

    internal static DataResponse ParseResponse(ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var response = new DataResponse();
        while (!reader.End)
        {
            if (!PooledWireReader.TryReadTag(ref reader, out var field, out var wireType))
            {
                return DataResponse.Parser.ParseFrom(payload);
            }

            if (field == 1 && wireType == 0 && PooledWireReader.TryReadVarint(ref reader, out var reqId))
            {
                response.ReqId = (int)reqId;
            }
            else if (field == 2 && wireType == 2 && PooledWireReader.TryReadLength(ref reader, out var length) && reader.Remaining >= length)
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
            if (!PooledWireReader.TryReadTag(ref reader, out var field, out var wireType))
            {
                return null;
            }

            switch (field, wireType)
            {
                case (1, 0) when PooledWireReader.TryReadVarint(ref reader, out var valid):
                    get.Valid = valid != 0;
                    break;
                case (2, 2) when PooledWireReader.TryReadLength(ref reader, out var length) && reader.Remaining >= length:
                    get.Data = PooledWireReader.ReadBytes(ref reader, length, get);
                    break;
                case (3, 2) when PooledWireReader.TryReadLength(ref reader, out var length) && reader.Remaining >= length:
                    get.Error = ByteString.CopyFrom(payload.Slice(reader.Position, length).ToArray());
                    reader.Advance(length);
                    break;
                case (4, 0) when PooledWireReader.TryReadVarint(ref reader, out var chunkId):
                    get.ChunkId = (int)chunkId;
                    break;
                case (5, 0) when PooledWireReader.TryReadVarint(ref reader, out var totalChunks):
                    get.TotalChunks = (int)totalChunks;
                    break;
                case (6, 0) when PooledWireReader.TryReadVarint(ref reader, out var totalSize):
                    get.TotalSize = totalSize;
                    break;
                default:
                    PooledWireReader.ReturnRented(get);
                    return null;
            }
        }

        return get;
    }
}
