using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace RayClient.Serialization;

/// <summary>
/// Python's <c>array.array</c> as typed .NET arrays, from both shapes CPython pickles it in
/// (Modules/arraymodule.c, <c>array_array___reduce_ex__</c> and <c>array__array_reconstructor</c>):
/// <c>array.array(typecode, list)</c> up to protocol 2, and
/// <c>array._array_reconstructor(cls, typecode, mformat_code, bytes)</c> from protocol 3 on.
/// </summary>
/// <remarks>
/// Typecodes map to <c>b</c> sbyte, <c>B</c> byte, <c>h</c> short, <c>H</c> ushort, <c>i</c> int,
/// <c>I</c> uint, <c>l</c>/<c>q</c> long, <c>L</c>/<c>Q</c> ulong, <c>f</c> float, <c>d</c> double and
/// <c>u</c>/<c>w</c> char (UTF-16, so a character outside the BMP takes two). With a machine format,
/// integers get the .NET type of the format's size and sign whatever the typecode, as CPython re-picks
/// the typecode when it reads a pickle from another machine (an <c>l</c> array from Windows, 4 bytes,
/// becomes <c>i</c>). Whatever CPython would refuse gives null, and the caller keeps the call as data.
/// </remarks>
internal static class PyArrays
{
    // CPython's enum machine_format_code.
    private const int Utf16LittleEndian = 18;
    private const int Utf32BigEndian = 21;
    private const int IeeeFloatLittleEndian = 14;
    private const int IeeeDoubleBigEndian = 17;

    /// <summary>The typecodes CPython accepts (<c>w</c> from 3.13).</summary>
    private const string Typecodes = "bBuwhHiIlLqQfd";

    /// <summary><c>array.array(typecode, items)</c>; null when CPython would refuse it.</summary>
    public static Array? FromList(string typecode, List<object?> items)
    {
        if (typecode.Length != 1)
        {
            return null;
        }

        return typecode[0] switch
        {
            'b' => Integers<sbyte>(items),
            'B' => Integers<byte>(items),
            'h' => Integers<short>(items),
            'H' => Integers<ushort>(items),
            'i' => Integers<int>(items),
            'I' => Integers<uint>(items),
            'l' or 'q' => Integers<long>(items),
            'L' or 'Q' => Integers<ulong>(items),
            'f' => Floats<float>(items),
            'd' => Floats<double>(items),
            'u' or 'w' => Characters(items),
            _ => null,
        };
    }

    /// <summary><c>array._array_reconstructor(cls, typecode, mformat_code, data)</c>; null when CPython would refuse it.</summary>
    public static Array? FromMachineFormat(string typecode, int format, byte[] data)
    {
        if (typecode.Length != 1 || !Typecodes.Contains(typecode[0], StringComparison.Ordinal))
        {
            return null;
        }

        var code = typecode[0];
        switch (format)
        {
            case >= 0 and < IeeeFloatLittleEndian:
                // 0/1: unsigned/signed 8 bits; then LE/BE pairs, unsigned then signed, of 16, 32, 64 bits.
                var size = format < 2 ? 1 : 2 << ((format - 2) / 4);
                var signed = format < 2 ? format == 1 : (format - 2) / 2 % 2 == 1;
                var bigEndian = format >= 2 && format % 2 == 1;
                if (data.Length % size != 0)
                {
                    return null;
                }

                return (size, signed) switch
                {
                    (1, false) => (byte[])data.Clone(),
                    (1, true) => Integers<sbyte>(data, 1, bigEndian, isUnsigned: false),
                    (2, false) => Integers<ushort>(data, 2, bigEndian, isUnsigned: true),
                    (2, true) => Integers<short>(data, 2, bigEndian, isUnsigned: false),
                    (4, false) => Integers<uint>(data, 4, bigEndian, isUnsigned: true),
                    (4, true) => Integers<int>(data, 4, bigEndian, isUnsigned: false),
                    (8, false) => Integers<ulong>(data, 8, bigEndian, isUnsigned: true),
                    _ => Integers<long>(data, 8, bigEndian, isUnsigned: false),
                };

            case >= IeeeFloatLittleEndian and <= IeeeDoubleBigEndian:
                var isDouble = format >= 16;
                var floatBigEndian = format % 2 == 1;
                var width = isDouble ? 8 : 4;
                if (data.Length % width != 0 || code is not ('f' or 'd'))
                {
                    return null;
                }

                var values = new double[data.Length / width];
                for (var i = 0; i < values.Length; i++)
                {
                    var item = data.AsSpan(i * width, width);
                    values[i] = (isDouble, floatBigEndian) switch
                    {
                        (true, true) => BinaryPrimitives.ReadDoubleBigEndian(item),
                        (true, false) => BinaryPrimitives.ReadDoubleLittleEndian(item),
                        (false, true) => BinaryPrimitives.ReadSingleBigEndian(item),
                        (false, false) => BinaryPrimitives.ReadSingleLittleEndian(item),
                    };
                }

                return code == 'd' ? values : Array.ConvertAll(values, v => (float)v);

            case >= Utf16LittleEndian and <= Utf32BigEndian:
                return code is 'u' or 'w' ? Text(format, data) : null;

            default:
                return null;
        }
    }

    private static T[] Integers<T>(byte[] data, int size, bool bigEndian, bool isUnsigned)
        where T : IBinaryInteger<T>
    {
        var result = new T[data.Length / size];
        for (var i = 0; i < result.Length; i++)
        {
            var item = data.AsSpan(i * size, size);
            result[i] = bigEndian ? T.ReadBigEndian(item, isUnsigned) : T.ReadLittleEndian(item, isUnsigned);
        }

        return result;
    }

    private static T[]? Integers<T>(List<object?> items)
        where T : IBinaryInteger<T>, IMinMaxValue<T>
    {
        var result = new T[items.Count];
        for (var i = 0; i < result.Length; i++)
        {
            BigInteger? value = items[i] switch
            {
                int v => v,
                long v => v,
                BigInteger v => v,
                _ => null,
            };
            if (value is not { } integer
                || integer < BigInteger.CreateTruncating(T.MinValue)
                || integer > BigInteger.CreateTruncating(T.MaxValue))
            {
                return null; // CPython cannot have pickled it: keep the call as data
            }

            result[i] = T.CreateTruncating(integer);
        }

        return result;
    }

    private static T[]? Floats<T>(List<object?> items)
        where T : IFloatingPointIeee754<T>
    {
        var result = new T[items.Count];
        for (var i = 0; i < result.Length; i++)
        {
            switch (items[i])
            {
                case double d:
                    result[i] = T.CreateTruncating(d); // C's (float) cast, as CPython's 'f' setitem
                    break;
                case int n:
                    result[i] = T.CreateTruncating(n);
                    break;
                case long n:
                    result[i] = T.CreateTruncating(n);
                    break;
                default:
                    return null;
            }
        }

        return result;
    }

    private static char[]? Characters(List<object?> items)
    {
        var text = new StringBuilder(items.Count);
        foreach (var item in items)
        {
            if (item is not string s)
            {
                return null;
            }

            text.Append(s);
        }

        return text.ToString().ToCharArray();
    }

    /// <summary>
    /// UTF-16 code units pass through as they are; UTF-32 code points become one char or a surrogate
    /// pair. Lone surrogates are kept (a CPython array of wchar_t holds them), code points past
    /// U+10FFFF are refused.
    /// </summary>
    private static char[]? Text(int format, byte[] data)
    {
        var bigEndian = format % 2 == 1;
        if (format <= 19)
        {
            if (data.Length % 2 != 0)
            {
                return null;
            }

            var units = new char[data.Length / 2];
            for (var i = 0; i < units.Length; i++)
            {
                var item = data.AsSpan(i * 2, 2);
                units[i] = (char)(bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(item) : BinaryPrimitives.ReadUInt16LittleEndian(item));
            }

            return units;
        }

        if (data.Length % 4 != 0)
        {
            return null;
        }

        var text = new StringBuilder(data.Length / 4);
        for (var i = 0; i < data.Length; i += 4)
        {
            var item = data.AsSpan(i, 4);
            var codePoint = bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(item) : BinaryPrimitives.ReadUInt32LittleEndian(item);
            if (codePoint > 0x10FFFF)
            {
                return null;
            }

            if (codePoint < 0x10000)
            {
                text.Append((char)codePoint);
            }
            else
            {
                codePoint -= 0x10000;
                text.Append((char)(0xD800 + (codePoint >> 10))).Append((char)(0xDC00 + (codePoint & 0x3FF)));
            }
        }

        return text.ToString().ToCharArray();
    }
}
