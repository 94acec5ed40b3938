using System.Buffers;

namespace RayClient.Serialization;

/// <summary>
/// A pickle held as a list of segments: pooled buffers for the opcodes and, for large byte payloads,
/// the caller's own memory (not copied). Dispose it once it has been sent: that returns the pooled
/// buffers. The caller must not change a large payload it pickled until then.
/// </summary>
internal sealed class PickledData : IDisposable
{
    private readonly ReadOnlyMemory<byte>[] _segments;
    private byte[][]? _rented;
    private ReadOnlySequence<byte>? _sequence;

    internal PickledData(ReadOnlyMemory<byte>[] segments, byte[][] rented, long length)
    {
        _segments = segments;
        _rented = rented;
        Length = length;
    }

    /// <summary>Total size in bytes.</summary>
    public long Length { get; }

    /// <summary>Number of segments (one per pooled buffer run or large payload).</summary>
    internal int SegmentCount => _segments.Length;

    /// <summary>The bytes as a sequence of segments, without copying.</summary>
    /// <exception cref="ObjectDisposedException">The data was disposed.</exception>
    public ReadOnlySequence<byte> AsSequence()
    {
        ThrowIfDisposed();
        return _sequence ??= Build(_segments);
    }

    /// <summary>Copies all bytes to <paramref name="destination"/>, which must hold <see cref="Length"/> bytes.</summary>
    public void CopyTo(Span<byte> destination)
    {
        ThrowIfDisposed();
        if (destination.Length < Length)
        {
            throw new ArgumentException($"The destination holds {destination.Length} bytes; {Length} are needed.", nameof(destination));
        }

        foreach (var segment in _segments)
        {
            segment.Span.CopyTo(destination);
            destination = destination[segment.Length..];
        }
    }

    /// <summary>The bytes in one new array.</summary>
    public byte[] ToArray()
    {
        if (Length > Array.MaxLength)
        {
            throw new InvalidOperationException($"The pickle is {Length} bytes, more than fits in one array.");
        }

        var result = GC.AllocateUninitializedArray<byte>((int)Length);
        CopyTo(result);
        return result;
    }

    /// <summary>Writes all bytes to <paramref name="stream"/>.</summary>
    public async Task WriteToAsync(Stream stream, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        foreach (var segment in _segments)
        {
            await stream.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Returns the pooled buffers. Idempotent.</summary>
    public void Dispose()
    {
        var rented = Interlocked.Exchange(ref _rented, null);
        if (rented is null)
        {
            return;
        }

        _sequence = null;
        foreach (var array in rented)
        {
            ArrayPool<byte>.Shared.Return(array);
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_rented is null, this);

    /// <summary>A sequence over the segments, in order, without copying.</summary>
    internal static ReadOnlySequence<byte> Build(ReadOnlyMemory<byte>[] segments)
    {
        if (segments.Length == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        if (segments.Length == 1)
        {
            return new ReadOnlySequence<byte>(segments[0]);
        }

        var first = new Segment(segments[0], 0);
        var last = first;
        for (var i = 1; i < segments.Length; i++)
        {
            last = last.Append(segments[i]);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
