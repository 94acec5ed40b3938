using System.Buffers;
using System.Buffers.Binary;

namespace RayClient.Server.Workers;

/// <summary>
/// Writes the framed protocol the Python workers (over their stdin) and the job drivers (over the
/// loopback <see cref="Jobs.DriverLink"/>) speak: u32 length | u8 kind | u64 seq | (u32 length | bytes)*,
/// the length counting everything after itself. The layout is documented at the top of ray_worker.py.
/// </summary>
internal static class Frames
{
    /// <summary>
    /// Writes one frame under <paramref name="writeLock"/> and flushes it. Small pieces are gathered
    /// into one pooled buffer; large blobs go to the stream as they are, not copied.
    /// </summary>
    public static async Task WriteAsync(Stream stream, SemaphoreSlim writeLock, byte kind, ulong seq, IReadOnlyList<ReadOnlyMemory<byte>> blobs, CancellationToken cancellationToken)
    {
        long length = 9;
        foreach (var blob in blobs)
        {
            length += 4 + blob.Length;
        }

        const int LargeBlob = 256 * 1024;
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        var used = 0;
        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(0), checked((uint)length));
            buffer[4] = kind;
            BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(5), seq);
            used = 13;
            foreach (var blob in blobs)
            {
                if (buffer.Length - used < 4)
                {
                    await stream.WriteAsync(buffer.AsMemory(0, used), cancellationToken).ConfigureAwait(false);
                    used = 0;
                }

                BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(used), (uint)blob.Length);
                used += 4;
                if (blob.Length >= LargeBlob || blob.Length > buffer.Length - used)
                {
                    await stream.WriteAsync(buffer.AsMemory(0, used), cancellationToken).ConfigureAwait(false);
                    used = 0;
                    await stream.WriteAsync(blob, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    blob.Span.CopyTo(buffer.AsSpan(used));
                    used += blob.Length;
                }
            }

            if (used > 0)
            {
                await stream.WriteAsync(buffer.AsMemory(0, used), cancellationToken).ConfigureAwait(false);
            }

            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            writeLock.Release();
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
