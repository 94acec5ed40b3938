using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using RayClient.Serialization;

namespace RayClient.Server.Pickling;

/// <summary>
/// Builds one pickle of a Python list out of independent pickles (each complete, with its own
/// <c>PROTO</c>, frames, memo numbered from 0, and <c>STOP</c>), without unpickling them: the
/// element opcodes are copied, their memo indices are moved past the earlier elements' entries,
/// and large payloads are linked rather than copied. Used by the embedded server to return
/// several results in one value.
/// </summary>
internal static class PickleComposer
{
    private const int BatchSize = 1000;
    private const int CopyRun = 16 * 1024;

    /// <summary>The pickle of <c>[loads(p) for p in elementPickles]</c>.</summary>
    /// <param name="elementPickles">Complete pickles; they must stay unchanged until the result is disposed (large payloads are referenced).</param>
    /// <param name="protocol">Protocol of the outer pickle, 2–5 (frames from 4). Default 5.</param>
    /// <exception cref="RaySerializationException">An element is not a valid pickle.</exception>
    public static PickledData ComposeList(IReadOnlyList<ReadOnlyMemory<byte>> elementPickles, int protocol = 5)
    {
        ArgumentNullException.ThrowIfNull(elementPickles);
        ArgumentOutOfRangeException.ThrowIfLessThan(protocol, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(protocol, PickleOpcodes.HighestProtocol);

        var output = new PickleBuffer();
        try
        {
            output.WriteBytes(PickleOpcodes.Proto, (byte)protocol);
            if (protocol >= 4)
            {
                output.StartFraming();
            }

            output.WriteByte(PickleOpcodes.EmptyList);
            long memoBase = 0;
            for (var i = 0; i < elementPickles.Count; i++)
            {
                if (i % BatchSize == 0)
                {
                    if (i > 0)
                    {
                        output.WriteByte(PickleOpcodes.Appends);
                    }

                    output.WriteByte(PickleOpcodes.Mark);
                }

                try
                {
                    memoBase += CopyElement(output, elementPickles[i], memoBase);
                }
                catch (RaySerializationException ex)
                {
                    throw new RaySerializationException($"Element {i} of the list: {ex.Message}", ex);
                }
            }

            if (elementPickles.Count > 0)
            {
                output.WriteByte(PickleOpcodes.Appends);
            }

            output.WriteByte(PickleOpcodes.Stop);
            return output.Build();
        }
        catch
        {
            output.Abandon();
            throw;
        }
    }

    /// <summary>Copies one element's opcodes; returns how many memo indices it occupies.</summary>
    private static long CopyElement(PickleBuffer output, ReadOnlyMemory<byte> element, long memoBase)
    {
        var data = element.Span;

        // Python's memo is a dict: MEMOIZE stores at len(memo). CPython writes either MEMOIZE only
        // (protocol 4+) or explicit PUTs only (protocol <= 3); the set of keys is only tracked
        // once an explicit PUT shows up, to keep the common case cheap.
        HashSet<long>? explicitKeys = null;
        long memoized = 0;
        long highest = -1;
        var runStart = 0;
        var position = 0;
        var stopped = false;
        while (position < data.Length && !stopped)
        {
            var opcode = data[position];
            var length = PickleScanner.Measure(data, position, out var payloadOffset, out var payloadLength);
            long index;
            switch (opcode)
            {
                case PickleOpcodes.Proto:
                case PickleOpcodes.Frame:
                    Flush(output, data, ref runStart, position);
                    runStart = position + length;
                    break;
                case PickleOpcodes.Stop:
                    Flush(output, data, ref runStart, position);
                    runStart = position + length;
                    stopped = true;
                    break;
                case PickleOpcodes.Memoize:
                    // Implicit index = len(memo) of this element so far.
                    Flush(output, data, ref runStart, position);
                    if (explicitKeys is null)
                    {
                        index = memoized++;
                    }
                    else
                    {
                        index = explicitKeys.Count;
                        explicitKeys.Add(index);
                    }

                    highest = Math.Max(highest, index);
                    WriteMemo(output, put: true, memoBase + index);
                    runStart = position + length;
                    break;
                case PickleOpcodes.BinPut:
                case PickleOpcodes.LongBinPut:
                case PickleOpcodes.Put:
                case PickleOpcodes.BinGet:
                case PickleOpcodes.LongBinGet:
                case PickleOpcodes.Get:
                    Flush(output, data, ref runStart, position);
                    index = MemoIndex(data, position, length);
                    var put = opcode is PickleOpcodes.BinPut or PickleOpcodes.LongBinPut or PickleOpcodes.Put;
                    if (put)
                    {
                        if (explicitKeys is null)
                        {
                            explicitKeys = [];
                            for (long k = 0; k < memoized; k++)
                            {
                                explicitKeys.Add(k);
                            }
                        }

                        explicitKeys.Add(index);
                        highest = Math.Max(highest, index);
                    }

                    WriteMemo(output, put, memoBase + index);
                    runStart = position + length;
                    break;
                case PickleOpcodes.BinBytes or PickleOpcodes.BinBytes8 or PickleOpcodes.ByteArray8 or PickleOpcodes.BinUnicode or PickleOpcodes.BinUnicode8
                    when payloadLength >= PickleBuffer.LargePayload:
                    Flush(output, data, ref runStart, position);
                    output.WriteLarge(data[position..payloadOffset], element.Slice(payloadOffset, payloadLength));
                    runStart = position + length;
                    break;
                default:
                    if (position + length - runStart >= CopyRun)
                    {
                        Flush(output, data, ref runStart, position + length);
                    }

                    break;
            }

            position += length;
        }

        if (!stopped)
        {
            throw new RaySerializationException("Malformed pickle: it ends without a STOP opcode");
        }

        return Math.Max(highest + 1, explicitKeys?.Count ?? memoized);
    }

    private static void Flush(PickleBuffer output, ReadOnlySpan<byte> data, ref int runStart, int end)
    {
        if (end > runStart)
        {
            output.Write(data[runStart..end]);
            runStart = end;
        }

        // Only between opcodes, so no opcode straddles two frames.
        output.CommitFrameIfFull();
    }

    private static long MemoIndex(ReadOnlySpan<byte> data, int position, int length) => data[position] switch
    {
        PickleOpcodes.BinPut or PickleOpcodes.BinGet => data[position + 1],
        PickleOpcodes.LongBinPut or PickleOpcodes.LongBinGet => BinaryPrimitives.ReadUInt32LittleEndian(data[(position + 1)..]),
        _ => long.TryParse(Encoding.ASCII.GetString(data.Slice(position + 1, length - 2)), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var index) && index >= 0
            ? index
            : throw new RaySerializationException($"Malformed pickle at byte {position}: invalid memo index"),
    };

    private static void WriteMemo(PickleBuffer output, bool put, long index)
    {
        if (index > uint.MaxValue)
        {
            throw new RaySerializationException("The composed pickle needs more than 2^32 memo entries.");
        }

        if (index < 256)
        {
            output.WriteBytes(put ? PickleOpcodes.BinPut : PickleOpcodes.BinGet, (byte)index);
        }
        else
        {
            var span = output.GetSpan(5);
            span[0] = put ? PickleOpcodes.LongBinPut : PickleOpcodes.LongBinGet;
            BinaryPrimitives.WriteUInt32LittleEndian(span[1..], (uint)index);
            output.Advance(5);
        }
    }
}
