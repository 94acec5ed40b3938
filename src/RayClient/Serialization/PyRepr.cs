using System.Collections;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace RayClient.Serialization;

/// <summary>Python-like <c>repr</c>/<c>str</c> of unpickled values, for messages and <c>ToString</c>.</summary>
internal static class PyRepr
{
    private const int MaxDepth = 16;
    private const int MaxItems = 50;

    /// <summary>Ints up to this many bits (about 300 digits) are rendered in decimal.</summary>
    private const int MaxDecimalBits = 1024;

    /// <summary>The Python <c>repr</c> of <paramref name="value"/>, shortened for very large values.</summary>
    public static string Format(object? value, int maxLength = 4000)
    {
        var sb = new StringBuilder();
        Append(sb, value, 0, maxLength);
        if (sb.Length > maxLength)
        {
            sb.Length = maxLength;
            sb.Append('…');
        }

        return sb.ToString();
    }

    /// <summary>Python's <c>str(value)</c>: strings as they are, everything else as its repr.</summary>
    public static string Str(object? value) => value is string s ? s : Format(value);

    private static void Append(StringBuilder sb, object? value, int depth, int maxLength)
    {
        if (sb.Length > maxLength)
        {
            return;
        }

        if (depth > MaxDepth)
        {
            sb.Append("...");
            return;
        }

        switch (value)
        {
            case null:
                sb.Append("None");
                return;
            case bool b:
                sb.Append(b ? "True" : "False");
                return;
            case string s:
                AppendString(sb, s, maxLength);
                return;
            case byte[] bytes:
                AppendBytes(sb, bytes);
                return;
            case double d:
                sb.Append(FormatFloat(d));
                return;
            case float f:
                sb.Append(FormatFloat(f));
                return;
            case decimal m:
                sb.Append("Decimal('").Append(m.ToString(CultureInfo.InvariantCulture)).Append("')");
                return;
            case Complex c:
                sb.Append('(').Append(FormatFloat(c.Real)).Append(c.Imaginary < 0 || double.IsNegative(c.Imaginary) ? "" : "+").Append(FormatFloat(c.Imaginary)).Append("j)");
                return;
            case BigInteger big:
                AppendBigInteger(sb, big);
                return;
            case IFormattable when value is int or long or byte or sbyte or short or ushort or uint or ulong:
                sb.Append(((IFormattable)value).ToString(null, CultureInfo.InvariantCulture));
                return;
            case PyTuple tuple:
                sb.Append('(');
                AppendItems(sb, tuple, depth, maxLength);
                sb.Append(tuple.Count == 1 ? ",)" : ")");
                return;
            case PyGlobal g:
                sb.Append(g.ToString());
                return;
            case PickleStub stub:
                sb.Append(stub.ToString());
                return;
            case PyObject o:
                AppendObject(sb, o, depth, maxLength);
                return;
            case IDictionary dict:
                AppendDict(sb, dict, depth, maxLength);
                return;
            case HashSet<object?> set:
                if (set.Count == 0)
                {
                    sb.Append("set()");
                    return;
                }

                sb.Append('{');
                AppendItems(sb, set, depth, maxLength);
                sb.Append('}');
                return;
            case IEnumerable list:
                sb.Append('[');
                AppendItems(sb, list, depth, maxLength);
                sb.Append(']');
                return;
            default:
                sb.Append(value.ToString());
                return;
        }
    }

    private static void AppendObject(StringBuilder sb, PyObject o, int depth, int maxLength)
    {
        sb.Append('<');
        if (o.Class is { } cls)
        {
            sb.Append(cls.ToString()).Append(" object");
        }
        else
        {
            sb.Append("object made by ");
            Append(sb, o.Callable, depth + 1, maxLength);
        }

        if (o.Args.Count > 0)
        {
            sb.Append(", args=");
            Append(sb, o.Args, depth + 1, maxLength);
        }

        if (o.State is not null)
        {
            sb.Append(", state=");
            Append(sb, o.State, depth + 1, maxLength);
        }

        sb.Append('>');
    }

    private static void AppendItems(StringBuilder sb, IEnumerable items, int depth, int maxLength)
    {
        var i = 0;
        foreach (var item in items)
        {
            if (i > 0)
            {
                sb.Append(", ");
            }

            if (i++ >= MaxItems || sb.Length > maxLength)
            {
                sb.Append("...");
                break;
            }

            Append(sb, item, depth + 1, maxLength);
        }
    }

    private static void AppendDict(StringBuilder sb, IDictionary dict, int depth, int maxLength)
    {
        sb.Append('{');
        var i = 0;
        foreach (DictionaryEntry entry in dict)
        {
            if (i > 0)
            {
                sb.Append(", ");
            }

            if (i++ >= MaxItems || sb.Length > maxLength)
            {
                sb.Append("...");
                break;
            }

            Append(sb, entry.Key, depth + 1, maxLength);
            sb.Append(": ");
            Append(sb, entry.Value, depth + 1, maxLength);
        }

        sb.Append('}');
    }

    /// <summary>A Python <c>repr</c> of a float: <c>1.0</c>, <c>nan</c>, <c>inf</c>, <c>1e+20</c>.</summary>
    public static string FormatFloat(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }

        var s = d.ToString("R", CultureInfo.InvariantCulture);
        if (s.Contains('E', StringComparison.Ordinal))
        {
            // .NET "1E+20" / "1E-05" → Python "1e+20" / "1e-05".
            var mantissa = s[..s.IndexOf('E', StringComparison.Ordinal)];
            var exponent = int.Parse(s[(s.IndexOf('E', StringComparison.Ordinal) + 1)..], CultureInfo.InvariantCulture);
            return $"{mantissa}e{(exponent < 0 ? "-" : "+")}{Math.Abs(exponent):00}";
        }

        return s.Contains('.', StringComparison.Ordinal) ? s : s + ".0";
    }

    /// <summary>
    /// Decimal for ordinary ints; beyond <see cref="MaxDecimalBits"/> the bit length and a hex
    /// prefix, because decimal formatting grows quadratically with the size (a peer may send a
    /// multi-million-bit int, and Python itself refuses str() of ints above 4300 digits).
    /// </summary>
    private static void AppendBigInteger(StringBuilder sb, BigInteger value)
    {
        var bits = value.IsZero ? 0 : (long)BigInteger.Abs(value).GetBitLength();
        if (bits <= MaxDecimalBits)
        {
            sb.Append(value.ToString(CultureInfo.InvariantCulture));
            return;
        }

        // The first 16 hex digits of |value|: a shift by whole hex digits keeps them a true prefix.
        var hexDigits = (bits + 3) / 4;
        var top = (ulong)(BigInteger.Abs(value) >> (int)((hexDigits - 16) * 4));
        sb.Append("<int of ").Append(bits.ToString(CultureInfo.InvariantCulture)).Append(" bits: ")
            .Append(value.Sign < 0 ? "-0x" : "0x").Append(top.ToString("x", CultureInfo.InvariantCulture)).Append("…>");
    }

    private static void AppendString(StringBuilder sb, string s, int maxLength)
    {
        var quote = s.Contains('\'', StringComparison.Ordinal) && !s.Contains('"', StringComparison.Ordinal) ? '"' : '\'';
        sb.Append(quote);
        foreach (var c in s)
        {
            if (sb.Length > maxLength)
            {
                break; // Format cuts the text at maxLength anyway: never render a huge string in full
            }

            switch (c)
            {
                case '\\':
                    sb.Append(@"\\");
                    break;
                case '\n':
                    sb.Append(@"\n");
                    break;
                case '\r':
                    sb.Append(@"\r");
                    break;
                case '\t':
                    sb.Append(@"\t");
                    break;
                default:
                    if (c == quote)
                    {
                        sb.Append('\\').Append(c);
                    }
                    else if (c < 0x20 || c == 0x7f)
                    {
                        sb.Append(@"\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        sb.Append(quote);
    }

    private static void AppendBytes(StringBuilder sb, byte[] bytes)
    {
        sb.Append("b'");
        var n = Math.Min(bytes.Length, 256);
        for (var i = 0; i < n; i++)
        {
            var b = bytes[i];
            switch (b)
            {
                case (byte)'\\':
                    sb.Append(@"\\");
                    break;
                case (byte)'\'':
                    sb.Append(@"\'");
                    break;
                case (byte)'\n':
                    sb.Append(@"\n");
                    break;
                case (byte)'\r':
                    sb.Append(@"\r");
                    break;
                case (byte)'\t':
                    sb.Append(@"\t");
                    break;
                default:
                    if (b is < 0x20 or >= 0x7f)
                    {
                        sb.Append(@"\x").Append(b.ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append((char)b);
                    }

                    break;
            }
        }

        if (n < bytes.Length)
        {
            sb.Append("...");
        }

        sb.Append('\'');
        if (n < bytes.Length)
        {
            sb.Append(" (").Append(bytes.Length.ToString(CultureInfo.InvariantCulture)).Append(" bytes)");
        }
    }
}
