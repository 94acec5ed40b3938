using System.Buffers;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Grpc.Core;

namespace RayClient.Shared;

/// <summary>
/// Shared source (compiled into RayClient and RayClient.Server, as grpc-dotnet's src/Shared): the
/// protobuf reading helpers of the pooled Datapath marshallers. A big <c>bytes</c> field is read
/// into a buffer rented from the shared array pool instead of a fresh array per chunk; the buffer is
/// remembered per message until its owner takes it back with <see cref="TakeRentedBuffer"/>.
/// Knows no message type, so each side keeps its own generated protocol types.
/// </summary>
internal static class PooledWireReader
{
    private const int PoolThreshold = 64 * 1024;
    private static readonly ConditionalWeakTable<IMessage, byte[]> Rented = new();

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

    public static void Serialize<T>(T message, SerializationContext context)
        where T : IMessage<T>, IBufferMessage
    {
        context.SetPayloadLength(message.CalculateSize());
        message.WriteTo(context.GetBufferWriter());
        context.Complete();
    }

    public static ByteString ReadBytes(ref SequenceReader<byte> reader, int length, IMessage owner)
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

    public static void ReturnRented(IMessage owner)
    {
        if (TakeRentedBuffer(owner) is { } buffer)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public static bool TryReadTag(ref SequenceReader<byte> reader, out int field, out int wireType)
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

    public static bool TryReadLength(ref SequenceReader<byte> reader, out int length)
    {
        length = 0;
        if (!TryReadVarint(ref reader, out var value) || value > int.MaxValue)
        {
            return false;
        }

        length = (int)value;
        return true;
    }

    public static bool TryReadVarint(ref SequenceReader<byte> reader, out ulong value)
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
