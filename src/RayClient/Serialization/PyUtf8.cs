using System.Text;

namespace RayClient.Serialization;

/// <summary>
/// UTF-8 with Python's <c>surrogatepass</c> error handler, which pickle uses for <c>str</c>: a lone
/// UTF-16 surrogate is written as its 3-byte form (ED A0 80–ED BF BF) instead of failing.
/// </summary>
internal static class PyUtf8
{
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Encodes <paramref name="value"/> into exactly <c>Encoding.UTF8.GetByteCount(value)</c> bytes.</summary>
    public static void EncodeSurrogatePass(string value, Span<byte> destination)
    {
        var o = 0;
        for (var i = 0; i < value.Length; i++)
        {
            int c = value[i];
            if (char.IsHighSurrogate((char)c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                var cp = char.ConvertToUtf32((char)c, value[++i]);
                destination[o++] = (byte)(0xF0 | (cp >> 18));
                destination[o++] = (byte)(0x80 | ((cp >> 12) & 0x3F));
                destination[o++] = (byte)(0x80 | ((cp >> 6) & 0x3F));
                destination[o++] = (byte)(0x80 | (cp & 0x3F));
            }
            else if (c < 0x80)
            {
                destination[o++] = (byte)c;
            }
            else if (c < 0x800)
            {
                destination[o++] = (byte)(0xC0 | (c >> 6));
                destination[o++] = (byte)(0x80 | (c & 0x3F));
            }
            else
            {
                // Includes lone surrogates, which is exactly what "surrogatepass" does.
                destination[o++] = (byte)(0xE0 | (c >> 12));
                destination[o++] = (byte)(0x80 | ((c >> 6) & 0x3F));
                destination[o++] = (byte)(0x80 | (c & 0x3F));
            }
        }
    }

    /// <summary>Decodes UTF-8 that may contain surrogatepass-encoded lone surrogates.</summary>
    public static string Decode(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return Strict.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return DecodeSurrogatePass(bytes);
        }
    }

    private static string DecodeSurrogatePass(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length);
        var i = 0;
        while (i < bytes.Length)
        {
            var b = bytes[i];
            if (b < 0x80)
            {
                sb.Append((char)b);
                i++;
            }
            else if ((b & 0xE0) == 0xC0 && i + 1 < bytes.Length)
            {
                sb.Append((char)(((b & 0x1F) << 6) | (bytes[i + 1] & 0x3F)));
                i += 2;
            }
            else if ((b & 0xF0) == 0xE0 && i + 2 < bytes.Length)
            {
                sb.Append((char)(((b & 0x0F) << 12) | ((bytes[i + 1] & 0x3F) << 6) | (bytes[i + 2] & 0x3F)));
                i += 3;
            }
            else if ((b & 0xF8) == 0xF0 && i + 3 < bytes.Length)
            {
                var cp = ((b & 0x07) << 18) | ((bytes[i + 1] & 0x3F) << 12) | ((bytes[i + 2] & 0x3F) << 6) | (bytes[i + 3] & 0x3F);
                sb.Append(cp is <= 0x10FFFF and >= 0x10000 ? char.ConvertFromUtf32(cp) : "\uFFFD");
                i += 4;
            }
            else
            {
                sb.Append('\uFFFD');
                i++;
            }
        }

        return sb.ToString();
    }
}
