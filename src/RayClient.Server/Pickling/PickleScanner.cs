using System.Buffers.Binary;
using RayClient.Serialization;

namespace RayClient.Server.Pickling;

/// <summary>How an opcode's argument is laid out.</summary>
internal enum PickleArgument : byte
{
    /// <summary>The byte is not an opcode.</summary>
    Invalid,

    /// <summary>No argument.</summary>
    None,

    /// <summary>A fixed number of bytes (<see cref="PickleScanner.FixedSize"/>).</summary>
    Fixed,

    /// <summary>One line ending in <c>\n</c> (text opcodes).</summary>
    Line,

    /// <summary>Two lines (<c>GLOBAL</c>, <c>INST</c>).</summary>
    TwoLines,

    /// <summary>A 1-byte length, then that many bytes.</summary>
    Length1,

    /// <summary>A 4-byte little-endian length, then that many bytes.</summary>
    Length4,

    /// <summary>An 8-byte little-endian length, then that many bytes.</summary>
    Length8,
}

/// <summary>
/// Walks the opcodes of a pickle (protocols 0–5) without interpreting them: it knows each
/// opcode's argument layout, as listed in CPython's <c>pickletools.opcodes</c>.
/// </summary>
internal static class PickleScanner
{
    private static readonly PickleArgument[] Layouts = CreateLayouts();
    private static readonly byte[] Sizes = CreateSizes();

    /// <summary>The argument layout of <paramref name="opcode"/>.</summary>
    public static PickleArgument Layout(byte opcode) => Layouts[opcode];

    /// <summary>The argument size of a <see cref="PickleArgument.Fixed"/> opcode.</summary>
    public static int FixedSize(byte opcode) => Sizes[opcode];

    /// <summary>
    /// Reads the opcode at <paramref name="position"/>: returns its total length (opcode and argument)
    /// and where its variable-length payload starts and how long it is (0 when it has none).
    /// </summary>
    /// <exception cref="RaySerializationException">Not an opcode, or the pickle is truncated.</exception>
    public static int Measure(ReadOnlySpan<byte> data, int position, out int payloadOffset, out int payloadLength)
    {
        var opcode = data[position];
        var argStart = position + 1;
        payloadOffset = argStart;
        payloadLength = 0;
        long total;
        switch (Layouts[opcode])
        {
            case PickleArgument.None:
                total = 1;
                break;
            case PickleArgument.Fixed:
                total = 1 + Sizes[opcode];
                break;
            case PickleArgument.Line:
                total = LineEnd(data, argStart) + 1 - position;
                break;
            case PickleArgument.TwoLines:
                total = LineEnd(data, LineEnd(data, argStart) + 1) + 1 - position;
                break;
            case PickleArgument.Length1:
                Need(data, argStart, 1);
                payloadOffset = argStart + 1;
                payloadLength = data[argStart];
                total = 2 + payloadLength;
                break;
            case PickleArgument.Length4:
                Need(data, argStart, 4);
                var length4 = BinaryPrimitives.ReadUInt32LittleEndian(data[argStart..]);
                payloadOffset = argStart + 4;
                payloadLength = length4 > int.MaxValue ? throw Truncated(position) : (int)length4;
                total = 5L + payloadLength;
                break;
            case PickleArgument.Length8:
                Need(data, argStart, 8);
                var length8 = BinaryPrimitives.ReadUInt64LittleEndian(data[argStart..]);
                payloadOffset = argStart + 8;
                payloadLength = length8 > int.MaxValue ? throw Truncated(position) : (int)length8;
                total = 9L + payloadLength;
                break;
            default:
                throw new RaySerializationException($"Malformed pickle at byte {position}: invalid opcode 0x{opcode:x2}");
        }

        if (position + total > data.Length)
        {
            throw Truncated(position);
        }

        return (int)total;
    }

    private static int LineEnd(ReadOnlySpan<byte> data, int start)
    {
        var end = start < data.Length ? data[start..].IndexOf((byte)'\n') : -1;
        return end < 0 ? throw Truncated(start) : start + end;
    }

    private static void Need(ReadOnlySpan<byte> data, int start, int count)
    {
        if (start + count > data.Length)
        {
            throw Truncated(start);
        }
    }

    private static RaySerializationException Truncated(int position) =>
        new($"Malformed pickle at byte {position}: truncated");

    private static PickleArgument[] CreateLayouts()
    {
        var layouts = new PickleArgument[256];
        foreach (var op in (ReadOnlySpan<byte>)
                 [
                     PickleOpcodes.Mark, PickleOpcodes.Stop, PickleOpcodes.Pop, PickleOpcodes.PopMark, PickleOpcodes.Dup,
                     PickleOpcodes.None, PickleOpcodes.BinPersId, PickleOpcodes.Reduce, PickleOpcodes.Append, PickleOpcodes.Build,
                     PickleOpcodes.Dict, PickleOpcodes.EmptyDict, PickleOpcodes.Appends, PickleOpcodes.List, PickleOpcodes.EmptyList,
                     PickleOpcodes.Obj, PickleOpcodes.SetItem, PickleOpcodes.Tuple, PickleOpcodes.EmptyTuple, PickleOpcodes.SetItems,
                     PickleOpcodes.NewObj, PickleOpcodes.Tuple1, PickleOpcodes.Tuple2, PickleOpcodes.Tuple3, PickleOpcodes.NewTrue,
                     PickleOpcodes.NewFalse, PickleOpcodes.EmptySet, PickleOpcodes.AddItems, PickleOpcodes.FrozenSet, PickleOpcodes.NewObjEx,
                     PickleOpcodes.StackGlobal, PickleOpcodes.Memoize, PickleOpcodes.NextBuffer, PickleOpcodes.ReadOnlyBuffer,
                 ])
        {
            layouts[op] = PickleArgument.None;
        }

        foreach (var op in (ReadOnlySpan<byte>)
                 [
                     PickleOpcodes.BinInt, PickleOpcodes.BinInt1, PickleOpcodes.BinInt2, PickleOpcodes.BinFloat, PickleOpcodes.BinGet,
                     PickleOpcodes.LongBinGet, PickleOpcodes.BinPut, PickleOpcodes.LongBinPut, PickleOpcodes.Proto, PickleOpcodes.Ext1,
                     PickleOpcodes.Ext2, PickleOpcodes.Ext4, PickleOpcodes.Frame,
                 ])
        {
            layouts[op] = PickleArgument.Fixed;
        }

        foreach (var op in (ReadOnlySpan<byte>)
                 [
                     PickleOpcodes.Float, PickleOpcodes.Int, PickleOpcodes.Long, PickleOpcodes.PersId, PickleOpcodes.String,
                     PickleOpcodes.Unicode, PickleOpcodes.Get, PickleOpcodes.Put,
                 ])
        {
            layouts[op] = PickleArgument.Line;
        }

        layouts[PickleOpcodes.Global] = PickleArgument.TwoLines;
        layouts[PickleOpcodes.Inst] = PickleArgument.TwoLines;
        layouts[PickleOpcodes.ShortBinString] = PickleArgument.Length1;
        layouts[PickleOpcodes.ShortBinBytes] = PickleArgument.Length1;
        layouts[PickleOpcodes.ShortBinUnicode] = PickleArgument.Length1;
        layouts[PickleOpcodes.Long1] = PickleArgument.Length1;
        layouts[PickleOpcodes.BinString] = PickleArgument.Length4;
        layouts[PickleOpcodes.BinUnicode] = PickleArgument.Length4;
        layouts[PickleOpcodes.BinBytes] = PickleArgument.Length4;
        layouts[PickleOpcodes.Long4] = PickleArgument.Length4;
        layouts[PickleOpcodes.BinUnicode8] = PickleArgument.Length8;
        layouts[PickleOpcodes.BinBytes8] = PickleArgument.Length8;
        layouts[PickleOpcodes.ByteArray8] = PickleArgument.Length8;
        return layouts;
    }

    private static byte[] CreateSizes()
    {
        var sizes = new byte[256];
        sizes[PickleOpcodes.BinInt] = 4;
        sizes[PickleOpcodes.BinInt1] = 1;
        sizes[PickleOpcodes.BinInt2] = 2;
        sizes[PickleOpcodes.BinFloat] = 8;
        sizes[PickleOpcodes.BinGet] = 1;
        sizes[PickleOpcodes.LongBinGet] = 4;
        sizes[PickleOpcodes.BinPut] = 1;
        sizes[PickleOpcodes.LongBinPut] = 4;
        sizes[PickleOpcodes.Proto] = 1;
        sizes[PickleOpcodes.Ext1] = 1;
        sizes[PickleOpcodes.Ext2] = 2;
        sizes[PickleOpcodes.Ext4] = 4;
        sizes[PickleOpcodes.Frame] = 8;
        return sizes;
    }
}
