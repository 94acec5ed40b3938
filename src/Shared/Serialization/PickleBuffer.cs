using System.Buffers;
using System.Buffers.Binary;

namespace RayClient.Serialization;

/// <summary>
/// Builds a <see cref="PickledData"/>: opcodes go into pooled chunks, large payloads are linked in
/// as their own segments without copying, and protocol-4 framing is applied as CPython does
/// (frames of about 64 KiB, committed between objects; large payloads stay outside frames,
/// https://peps.python.org/pep-3154/#framing).
/// </summary>
internal sealed class PickleBuffer
{
    /// <summary>Payloads at least this large are linked, not copied, and written outside frames (CPython's <c>_FRAME_SIZE_TARGET</c>).</summary>
    public const int LargePayload = 64 * 1024;

    private const int FirstChunkSize = 256;
    private const int MaxChunkSize = 1024 * 1024;
    private const int FrameHeaderSize = 9;

    private readonly List<ReadOnlyMemory<byte>> _segments = [];
    private readonly List<byte[]> _rented = [];
    private byte[] _chunk = [];
    private int _segmentStart;
    private int _position;
    private int _nextChunkSize = FirstChunkSize;
    private long _completed;

    private bool _framing;
    private byte[]? _frameChunk;
    private int _frameOffset;
    private long _frameContentStart;
    private bool _built;

    /// <summary>Bytes written so far.</summary>
    public long Length => _completed + (_position - _segmentStart);

    /// <summary>Starts framing (protocol 4+): from now on, small writes go into frames.</summary>
    public void StartFraming() => _framing = true;

    /// <summary>A span of at least <paramref name="size"/> contiguous bytes; call <see cref="Advance"/> after writing.</summary>
    public Span<byte> GetSpan(int size)
    {
        EnsureFrame();
        if (_chunk.Length - _position < size)
        {
            NewChunk(size);
        }

        return _chunk.AsSpan(_position);
    }

    /// <summary>Marks <paramref name="count"/> bytes of the last <see cref="GetSpan"/> as written.</summary>
    public void Advance(int count) => _position += count;

    /// <summary>Writes one byte.</summary>
    public void WriteByte(byte value)
    {
        EnsureFrame();
        if (_position == _chunk.Length)
        {
            NewChunk(1);
        }

        _chunk[_position++] = value;
    }

    /// <summary>Writes two bytes.</summary>
    public void WriteBytes(byte first, byte second)
    {
        var span = GetSpan(2);
        span[0] = first;
        span[1] = second;
        _position += 2;
    }

    /// <summary>Copies <paramref name="data"/>.</summary>
    public void Write(ReadOnlySpan<byte> data)
    {
        while (data.Length > 0)
        {
            var span = GetSpan(Math.Min(data.Length, MaxChunkSize));
            var n = Math.Min(span.Length, data.Length);
            data[..n].CopyTo(span);
            _position += n;
            data = data[n..];
        }
    }

    /// <summary>
    /// Writes a large object outside any frame, as CPython's <c>Framer.write_large_bytes</c>: the
    /// current frame is closed, the opcode header is written unframed and the payload is linked
    /// without copying. The next small write opens a new frame.
    /// </summary>
    public void WriteLarge(ReadOnlySpan<byte> header, ReadOnlyMemory<byte> payload)
    {
        EndFrame();
        WriteUnframed(header);
        LinkSegment(payload);
    }

    /// <summary>
    /// Like <see cref="WriteLarge"/> but for a payload already in a pooled array that this buffer now owns.
    /// </summary>
    public void WriteLargeOwned(ReadOnlySpan<byte> header, byte[] pooled, int length)
    {
        EndFrame();
        WriteUnframed(header);
        _rented.Add(pooled);
        LinkSegment(pooled.AsMemory(0, length));
    }

    /// <summary>Called between objects: closes the current frame once it reached the target size.</summary>
    public void CommitFrameIfFull()
    {
        if (_frameChunk is not null && Length - _frameContentStart >= LargePayload)
        {
            EndFrame();
        }
    }

    /// <summary>Finishes the pickle and hands over the segments; the buffer must not be used afterwards.</summary>
    public PickledData Build()
    {
        EndFrame();
        FlushSegment();
        _built = true;
        return new PickledData([.. _segments], [.. _rented], _completed);
    }

    /// <summary>Returns the pooled chunks when building failed.</summary>
    public void Abandon()
    {
        if (_built)
        {
            return;
        }

        _built = true;
        foreach (var array in _rented)
        {
            ArrayPool<byte>.Shared.Return(array);
        }

        _rented.Clear();
        _segments.Clear();
    }

    private void WriteUnframed(ReadOnlySpan<byte> data)
    {
        var framing = _framing;
        _framing = false;
        Write(data);
        _framing = framing;
    }

    private void LinkSegment(ReadOnlyMemory<byte> memory)
    {
        FlushSegment();
        if (memory.Length > 0)
        {
            _segments.Add(memory);
            _completed += memory.Length;
        }
    }

    private void EnsureFrame()
    {
        if (!_framing || _frameChunk is not null)
        {
            return;
        }

        if (_chunk.Length - _position < FrameHeaderSize)
        {
            NewChunk(FrameHeaderSize);
        }

        _frameChunk = _chunk;
        _frameOffset = _position;
        _position += FrameHeaderSize;
        _frameContentStart = Length;
    }

    private void EndFrame()
    {
        if (_frameChunk is null)
        {
            return;
        }

        var size = Length - _frameContentStart;
        var header = _frameChunk.AsSpan(_frameOffset, FrameHeaderSize);
        header[0] = PickleOpcodes.Frame;
        BinaryPrimitives.WriteUInt64LittleEndian(header[1..], (ulong)size);
        _frameChunk = null;
    }

    private void FlushSegment()
    {
        if (_position > _segmentStart)
        {
            _segments.Add(_chunk.AsMemory(_segmentStart, _position - _segmentStart));
            _completed += _position - _segmentStart;
            _segmentStart = _position;
        }
    }

    private void NewChunk(int minimum)
    {
        FlushSegment();
        var size = Math.Max(minimum, _nextChunkSize);
        _nextChunkSize = Math.Min(_nextChunkSize * 4, MaxChunkSize);
        _chunk = ArrayPool<byte>.Shared.Rent(size);
        _rented.Add(_chunk);
        _segmentStart = 0;
        _position = 0;
    }
}
