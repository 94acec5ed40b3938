using System.Globalization;
using System.Numerics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace RayClient.Packaging;

/// <summary>
/// PyYAML's <c>yaml.safe_load</c> followed by <c>json.dumps</c>, which is how Ray reads conda
/// environment files (python/ray/_private/runtime_env/validation.py) and <c>ray job submit
/// --runtime-env</c> files: YamlDotNet parses, and the scalars are resolved with PyYAML's YAML 1.1
/// implicit resolvers (lib/yaml/resolver.py: yes/no/on/off are booleans, <c>0755</c> is octal,
/// <c>1:20</c> is base 60, <c>1e3</c> is a string) and built as SafeConstructor builds them.
/// </summary>
/// <remarks>
/// Parser events only, no reflection-based deserialization (trimmed and file-based apps). Values
/// that Ray cannot send either, because <c>json.dumps</c> refuses them or JSON has no such number
/// (timestamps, binary, <c>.inf</c>/<c>.nan</c>), are errors here rather than silently changed.
/// </remarks>
internal static partial class PyYaml
{
    private const string CoreTagPrefix = "tag:yaml.org,2002:";

    /// <summary>Parses one YAML document into JSON; null for an empty stream or a null document.</summary>
    /// <exception cref="FormatException">Malformed YAML, or a value Ray could not send as JSON; the message has the line and column.</exception>
    public static JsonNode? SafeLoad(string text)
    {
        var scanner = new Scanner(new StringReader(text));
        var parser = new Parser(scanner);
        try
        {
            parser.Consume<StreamStart>();
            if (parser.TryConsume<StreamEnd>(out _))
            {
                return null;
            }

            parser.Consume<DocumentStart>();
            var anchors = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
            var root = ReadNode(parser, anchors);
            parser.Consume<DocumentEnd>();
            if (parser.Accept<DocumentStart>(out var second))
            {
                throw Error(second.Start, "expected a single document in the stream, but found another document");
            }

            parser.Consume<StreamEnd>();
            return root;
        }
        catch (YamlException e)
        {
            // YamlDotNet's messages carry "(Line: 2, Col: 3, Idx: ...) - (...): " first; ours say it once.
            var message = e.Message;
            var separator = message.IndexOf("): ", StringComparison.Ordinal);
            throw Error(e.End, separator >= 0 && message.StartsWith('(') ? message[(separator + 3)..] : message, e);
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet 18.1 fails this way on some malformed flow collections ("a: [1, 2\nb: 3").
            throw Error(scanner.CurrentPosition, "malformed YAML here", e);
        }
    }

    private static JsonNode? ReadNode(IParser parser, Dictionary<string, JsonNode?> anchors)
    {
        if (parser.TryConsume<AnchorAlias>(out var alias))
        {
            return anchors.TryGetValue(alias.Value.Value, out var target)
                ? target?.DeepClone()
                : throw Error(alias.Start, $"found undefined alias '{alias.Value.Value}'");
        }

        JsonNode? node;
        AnchorName anchor;
        if (parser.TryConsume<Scalar>(out var scalar))
        {
            anchor = scalar.Anchor;
            node = Construct(scalar);
        }
        else if (parser.TryConsume<SequenceStart>(out var sequenceStart))
        {
            anchor = sequenceStart.Anchor;
            CheckCollectionTag(sequenceStart.Tag, "seq", sequenceStart.Start);
            var array = new JsonArray();
            while (!parser.TryConsume<SequenceEnd>(out _))
            {
                array.Add(ReadNode(parser, anchors));
            }

            node = array;
        }
        else
        {
            var mappingStart = parser.Consume<MappingStart>();
            anchor = mappingStart.Anchor;
            CheckCollectionTag(mappingStart.Tag, "map", mappingStart.Start);
            node = ReadMapping(parser, anchors);
        }

        if (!anchor.IsEmpty)
        {
            anchors[anchor.Value] = node;
        }

        return node;
    }

    private static JsonObject ReadMapping(IParser parser, Dictionary<string, JsonNode?> anchors)
    {
        // SafeConstructor.flatten_mapping: the pairs of "<<: *a" (or "<<: [*a, *b]", a winning over
        // b) come before the mapping's own pairs, and then, as in a Python dict, a repeated key keeps
        // its first place and its last value.
        List<(string Key, JsonNode? Value)>? merged = null;
        var own = new List<(string Key, JsonNode? Value)>();
        while (!parser.TryConsume<MappingEnd>(out _))
        {
            if (parser.Accept<Scalar>(out var mergeKey) && mergeKey.Value == "<<" && mergeKey.Style == ScalarStyle.Plain && mergeKey.Tag.IsEmpty)
            {
                parser.MoveNext();
                var start = parser.Current!.Start;
                var sources = ReadNode(parser, anchors) switch
                {
                    JsonObject one => [one],
                    JsonArray many when many.All(m => m is JsonObject) => many.Cast<JsonObject>().Reverse().ToList(),
                    _ => throw Error(start, "while constructing a mapping: expected a mapping or list of mappings for merging"),
                };
                merged ??= [];
                foreach (var source in sources)
                {
                    merged.AddRange(source.Select(p => (p.Key, p.Value?.DeepClone())));
                }

                continue;
            }

            var keyStart = parser.Current!.Start;
            var key = ReadNode(parser, anchors) switch
            {
                null => "null",
                JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
                JsonValue v => v.ToJsonString(), // json.dumps: True -> "true", 1.5 -> "1.5"
                _ => throw Error(keyStart, "while constructing a mapping: found unhashable key"),
            };
            own.Add((key, ReadNode(parser, anchors)));
        }

        var result = new JsonObject();
        foreach (var (key, value) in merged is null ? own : merged.Concat(own))
        {
            result[key] = value; // in place for a key already there
        }

        return result;
    }

    private static void CheckCollectionTag(TagName tag, string expected, Mark start)
    {
        if (!tag.IsEmpty && !tag.IsNonSpecific && tag.Value != CoreTagPrefix + expected)
        {
            throw UnknownTag(tag, start);
        }
    }

    private static JsonNode? Construct(Scalar scalar)
    {
        var value = scalar.Value;
        string tag;
        if (scalar.Tag.IsEmpty || scalar.Tag.IsNonSpecific)
        {
            // Only plain scalars are resolved; a quoted or block scalar is a string (PyYAML's
            // parser also resolves the non-specific "!" tag).
            tag = scalar.Style == ScalarStyle.Plain || scalar.Tag.IsNonSpecific ? Resolve(value) : "str";
        }
        else if (scalar.Tag.Value.StartsWith(CoreTagPrefix, StringComparison.Ordinal))
        {
            tag = scalar.Tag.Value[CoreTagPrefix.Length..];
        }
        else
        {
            throw UnknownTag(scalar.Tag, scalar.Start);
        }

        return tag switch
        {
            "str" => JsonValue.Create(value),
            "null" => null,
            "bool" => JsonValue.Create(value.ToLowerInvariant() is "yes" or "true" or "on"),
            "int" => ConstructInt(value, scalar.Start),
            "float" => ConstructFloat(value, scalar.Start),
            "timestamp" => throw Error(scalar.Start, $"'{value}' is a YAML 1.1 timestamp (a Python date), which Ray cannot send as JSON; quote it to pass a string"),
            "binary" => throw Error(scalar.Start, "!!binary values are Python bytes, which Ray cannot send as JSON"),
            "merge" => throw UnknownTag(CoreTagPrefix + "merge", scalar.Start),
            "value" => throw Error(scalar.Start, "could not determine a constructor for the tag 'tag:yaml.org,2002:value' ('=' is reserved in YAML 1.1; quote it)"),
            _ => throw UnknownTag(scalar.Tag, scalar.Start),
        };
    }

    /// <summary>PyYAML's implicit resolvers, in its order.</summary>
    private static string Resolve(string value) =>
        value.Length == 0 || NullPattern().IsMatch(value) ? "null"
        : BoolPattern().IsMatch(value) ? "bool"
        : FloatPattern().IsMatch(value) ? "float"
        : IntPattern().IsMatch(value) ? "int"
        : value == "<<" ? "merge"
        : TimestampPattern().IsMatch(value) ? "timestamp"
        : value == "=" ? "value"
        : "str";

    /// <summary>SafeConstructor.construct_yaml_int: any size, as Python ints are.</summary>
    private static JsonNode ConstructInt(string text, Mark start)
    {
        var value = text.Replace("_", string.Empty, StringComparison.Ordinal);
        var sign = BigInteger.One;
        if (value.StartsWith('-') || value.StartsWith('+'))
        {
            sign = value[0] == '-' ? BigInteger.MinusOne : BigInteger.One;
            value = value[1..];
        }

        BigInteger result;
        if (value == "0")
        {
            result = BigInteger.Zero;
        }
        else if (value.StartsWith("0b", StringComparison.Ordinal))
        {
            result = Digits(value[2..], 2, text, start);
        }
        else if (value.StartsWith("0x", StringComparison.Ordinal))
        {
            result = Digits(value[2..], 16, text, start);
        }
        else if (value.StartsWith('0'))
        {
            result = Digits(value[1..], 8, text, start);
        }
        else if (value.Contains(':', StringComparison.Ordinal))
        {
            result = BigInteger.Zero;
            foreach (var part in value.Split(':'))
            {
                result = (result * 60) + Digits(part, 10, text, start);
            }
        }
        else
        {
            result = Digits(value, 10, text, start);
        }

        return JsonNode.Parse((sign * result).ToString(CultureInfo.InvariantCulture))!;
    }

    private static BigInteger Digits(string digits, int radix, string text, Mark start)
    {
        if (digits.Length == 0)
        {
            throw Error(start, $"invalid literal for int(): '{text}'");
        }

        var result = BigInteger.Zero;
        foreach (var c in digits)
        {
            result = (result * radix) + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }

        return result;
    }

    /// <summary>SafeConstructor.construct_yaml_float, written as Python's json.dumps writes a float.</summary>
    private static JsonNode ConstructFloat(string text, Mark start)
    {
        var value = text.Replace("_", string.Empty, StringComparison.Ordinal).ToLowerInvariant();
        var sign = 1.0;
        if (value.StartsWith('-') || value.StartsWith('+'))
        {
            sign = value[0] == '-' ? -1.0 : 1.0;
            value = value[1..];
        }

        double result;
        if (value is ".inf" or ".nan")
        {
            throw Error(start, $"'{text}' is a YAML 1.1 float ({(value == ".inf" ? "infinity" : "NaN")}) that JSON cannot carry; quote it to pass a string");
        }
        else if (value.Contains(':', StringComparison.Ordinal))
        {
            result = 0.0;
            foreach (var part in value.Split(':'))
            {
                result = (result * 60) + ParseDouble(part, text, start);
            }
        }
        else
        {
            result = ParseDouble(value, text, start);
        }

        return JsonNode.Parse(PythonRepr(sign * result))!;
    }

    private static double ParseDouble(string value, string text, Mark start) =>
        double.TryParse(value, NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out var result) && double.IsFinite(result)
            ? result
            : throw Error(start, $"'{text}' is a float out of range for JSON");

    /// <summary>Python's <c>repr(float)</c>: shortest round-trip digits, exponent below 1e-4 and from 1e16.</summary>
    internal static string PythonRepr(double value)
    {
        if (value == 0)
        {
            return double.IsNegative(value) ? "-0.0" : "0.0";
        }

        // .NET's shortest round-trip form ("685230.15", "1.5E-07", "1E+20") as digits and the
        // decimal point's position: value = 0.<digits> x 10^point.
        var shortest = Math.Abs(value).ToString("R", CultureInfo.InvariantCulture);
        var exponent = 0;
        var e = shortest.IndexOf('E', StringComparison.Ordinal);
        if (e >= 0)
        {
            exponent = int.Parse(shortest.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            shortest = shortest[..e];
        }

        var dot = shortest.IndexOf('.', StringComparison.Ordinal);
        var integerPart = dot >= 0 ? shortest[..dot] : shortest;
        var digits = integerPart + (dot >= 0 ? shortest[(dot + 1)..] : string.Empty);
        var point = integerPart.Length + exponent;
        var leadingZeros = digits.Length - digits.TrimStart('0').Length;
        digits = digits[leadingZeros..].TrimEnd('0');
        point -= leadingZeros;

        var sign = value < 0 ? "-" : string.Empty;
        if (point > 16 || point < -3)
        {
            var mantissa = digits.Length == 1 ? digits : $"{digits[0]}.{digits[1..]}";
            var exp = point - 1;
            return $"{sign}{mantissa}e{(exp < 0 ? '-' : '+')}{Math.Abs(exp):00}";
        }

        if (point <= 0)
        {
            return $"{sign}0.{new string('0', -point)}{digits}";
        }

        return point >= digits.Length
            ? $"{sign}{digits}{new string('0', point - digits.Length)}.0"
            : $"{sign}{digits[..point]}.{digits[point..]}";
    }

    private static FormatException UnknownTag(TagName tag, Mark start) => UnknownTag(tag.Value, start);

    private static FormatException UnknownTag(string tag, Mark start) =>
        Error(start, $"could not determine a constructor for the tag '{tag}'");

    private static FormatException Error(Mark start, string message, Exception? inner = null) =>
        new($"line {start.Line}, column {start.Column}: {message}", inner);

    // PyYAML's resolver regular expressions (YAML 1.1), rewritten for .NET.
    [GeneratedRegex(@"^(?:~|null|Null|NULL)$", RegexOptions.CultureInvariant)]
    private static partial Regex NullPattern();

    [GeneratedRegex(@"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$", RegexOptions.CultureInvariant)]
    private static partial Regex BoolPattern();

    [GeneratedRegex(@"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", RegexOptions.CultureInvariant)]
    private static partial Regex FloatPattern();

    [GeneratedRegex(@"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$", RegexOptions.CultureInvariant)]
    private static partial Regex IntPattern();

    [GeneratedRegex(@"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$", RegexOptions.CultureInvariant)]
    private static partial Regex TimestampPattern();
}
