using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace RayClient.Packaging;

/// <summary>
/// Reads the YAML subset that conda <c>environment.yml</c> files use — block mappings and
/// sequences, flow <c>[…]</c>/<c>{…}</c> collections, plain and quoted scalars, comments — into
/// JSON, resolving scalars like PyYAML's <c>safe_load</c> (YAML 1.1: yes/no/on/off are booleans).
/// Anchors, aliases, tags, block scalars (<c>|</c>, <c>&gt;</c>) and multi-line scalars are
/// refused with a <see cref="FormatException"/> instead of being misread; pass such environments
/// as a dict (<see cref="RuntimeEnvConda.FromEnvironment"/>).
/// </summary>
internal static partial class SimpleYaml
{
    private readonly record struct Line(int Number, int Indent, string Text);

    /// <summary>Parses a document; null for an empty one.</summary>
    /// <exception cref="FormatException">Malformed or unsupported YAML.</exception>
    public static JsonNode? Parse(string text)
    {
        var lines = Tokenize(text);
        if (lines.Count == 0)
        {
            return null;
        }

        var index = 0;
        var result = ParseBlock(lines, ref index, lines[0].Indent);
        if (index < lines.Count)
        {
            throw Error(lines[index], "unexpected indentation");
        }

        return result;
    }

    private static List<Line> Tokenize(string text)
    {
        var result = new List<Line>();
        var raw = text.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n').Split('\n');
        var started = false;
        for (var n = 0; n < raw.Length; n++)
        {
            var line = StripComment(raw[n]).TrimEnd();
            if (line.Length == 0)
            {
                continue;
            }

            if (line.StartsWith('%') && !started)
            {
                continue; // directive
            }

            if (line == "---" || line.StartsWith("--- ", StringComparison.Ordinal))
            {
                if (started)
                {
                    throw new FormatException($"line {n + 1}: multiple YAML documents are not supported");
                }

                line = line[3..].Trim();
                if (line.Length == 0)
                {
                    continue;
                }
            }

            if (line == "...")
            {
                break;
            }

            var indent = 0;
            while (indent < line.Length && line[indent] == ' ')
            {
                indent++;
            }

            if (indent < line.Length && line[indent] == '\t')
            {
                throw new FormatException($"line {n + 1}: tabs are not allowed in YAML indentation");
            }

            started = true;
            result.Add(new Line(n + 1, indent, line[indent..]));
        }

        return result;
    }

    private static string StripComment(string line)
    {
        var quote = '\0';
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (quote != '\0')
            {
                if (c == quote)
                {
                    quote = '\0';
                }
                else if (c == '\\' && quote == '"')
                {
                    i++;
                }
            }
            else if (c is '\'' or '"' && (i == 0 || line[i - 1] is ' ' or '[' or '{' or ',' or ':' or '-'))
            {
                quote = c;
            }
            else if (c == '#' && (i == 0 || line[i - 1] is ' ' or '\t'))
            {
                return line[..i];
            }
        }

        return line;
    }

    private static JsonNode? ParseBlock(List<Line> lines, ref int index, int indent)
    {
        var line = lines[index];
        if (IsSequenceItem(line.Text))
        {
            return ParseSequence(lines, ref index, indent);
        }

        if (SplitKey(line.Text) is not null)
        {
            return ParseMapping(lines, ref index, indent);
        }

        index++;
        if (index < lines.Count && lines[index].Indent > indent)
        {
            throw Error(lines[index], "multi-line scalars are not supported");
        }

        return ParseInline(line, line.Text);
    }

    private static JsonArray ParseSequence(List<Line> lines, ref int index, int indent)
    {
        var array = new JsonArray();
        while (index < lines.Count && lines[index].Indent == indent && IsSequenceItem(lines[index].Text))
        {
            var line = lines[index];
            var rest = line.Text[1..].TrimStart(' ');
            if (rest.Length == 0)
            {
                index++;
                array.Add(index < lines.Count && lines[index].Indent > indent ? ParseBlock(lines, ref index, lines[index].Indent) : null);
                continue;
            }

            // "- key: value" opens a mapping (or "- - x" a sequence) whose indentation is the column of its first character.
            var column = indent + (line.Text.Length - rest.Length);
            lines[index] = new Line(line.Number, column, rest);
            array.Add(ParseBlock(lines, ref index, column));
        }

        return array;
    }

    private static JsonObject ParseMapping(List<Line> lines, ref int index, int indent)
    {
        var obj = new JsonObject();
        while (index < lines.Count && lines[index].Indent == indent && !IsSequenceItem(lines[index].Text))
        {
            var line = lines[index];
            var split = SplitKey(line.Text) ?? throw Error(line, "expected 'key: value'");
            index++;
            JsonNode? value;
            if (split.Value.Length > 0)
            {
                value = ParseInline(line, split.Value);
                if (index < lines.Count && lines[index].Indent > indent)
                {
                    throw Error(lines[index], "multi-line scalars are not supported");
                }
            }
            else if (index < lines.Count && (lines[index].Indent > indent || (lines[index].Indent == indent && IsSequenceItem(lines[index].Text))))
            {
                value = ParseBlock(lines, ref index, lines[index].Indent);
            }
            else
            {
                value = null;
            }

            obj.Remove(split.Key); // PyYAML keeps the last value of a repeated key
            obj[split.Key] = value;
        }

        return obj;
    }

    private static bool IsSequenceItem(string text) => text == "-" || text.StartsWith("- ", StringComparison.Ordinal);

    /// <summary>Splits "key: value" (or "key:") outside quotes and flow collections; null when the line is no mapping entry.</summary>
    private static (string Key, string Value)? SplitKey(string text)
    {
        if (text.Length == 0 || text[0] is '[' or '{')
        {
            return null;
        }

        var quote = '\0';
        var start = 0;
        if (text[0] is '\'' or '"')
        {
            quote = text[0];
            var end = 1;
            while (end < text.Length && text[end] != quote)
            {
                end += text[end] == '\\' && quote == '"' ? 2 : 1;
            }

            start = end + 1;
        }

        for (var i = start; i < text.Length; i++)
        {
            if (text[i] == ':' && (i + 1 == text.Length || text[i + 1] == ' '))
            {
                var rawKey = text[..i].TrimEnd();
                var key = quote != '\0' ? Unquote(rawKey) : rawKey;
                return (key, text[(i + 1)..].Trim());
            }
        }

        return null;
    }

    private static JsonNode? ParseInline(Line line, string text)
    {
        var position = 0;
        var value = ParseFlowValue(line, text, ref position, inFlow: false);
        SkipSpaces(text, ref position);
        if (position != text.Length)
        {
            throw Error(line, $"unexpected text '{text[position..]}'");
        }

        return value;
    }

    private static JsonNode? ParseFlowValue(Line line, string text, ref int position, bool inFlow)
    {
        SkipSpaces(text, ref position);
        if (position >= text.Length)
        {
            return null;
        }

        var c = text[position];
        if (c is '&' or '*' or '!' or '|' or '>' or '@' or '`')
        {
            throw Error(line, $"YAML feature '{c}' is not supported; give the conda environment as a dict instead");
        }

        if (c == '[')
        {
            position++;
            var array = new JsonArray();
            while (true)
            {
                SkipSpaces(text, ref position);
                if (position < text.Length && text[position] == ']')
                {
                    position++;
                    return array;
                }

                array.Add(ParseFlowValue(line, text, ref position, inFlow: true));
                SkipSpaces(text, ref position);
                if (position < text.Length && text[position] == ',')
                {
                    position++;
                }
                else if (position >= text.Length || text[position] != ']')
                {
                    throw Error(line, "unterminated flow sequence");
                }
            }
        }

        if (c == '{')
        {
            position++;
            var obj = new JsonObject();
            while (true)
            {
                SkipSpaces(text, ref position);
                if (position < text.Length && text[position] == '}')
                {
                    position++;
                    return obj;
                }

                var key = ParseFlowValue(line, text, ref position, inFlow: true)?.ToString() ?? "null";
                SkipSpaces(text, ref position);
                JsonNode? value = null;
                if (position < text.Length && text[position] == ':')
                {
                    position++;
                    value = ParseFlowValue(line, text, ref position, inFlow: true);
                }

                obj[key] = value;
                SkipSpaces(text, ref position);
                if (position < text.Length && text[position] == ',')
                {
                    position++;
                }
                else if (position >= text.Length || text[position] != '}')
                {
                    throw Error(line, "unterminated flow mapping");
                }
            }
        }

        if (c is '\'' or '"')
        {
            var start = position;
            position++;
            while (position < text.Length)
            {
                if (text[position] == c)
                {
                    if (c == '\'' && position + 1 < text.Length && text[position + 1] == '\'')
                    {
                        position += 2;
                        continue;
                    }

                    position++;
                    return JsonValue.Create(Unquote(text[start..position]));
                }

                position += text[position] == '\\' && c == '"' ? 2 : 1;
            }

            throw Error(line, "unterminated quoted string (multi-line strings are not supported)");
        }

        // Plain scalar: up to the end, or in flow context up to ',', ']', '}' or ': '.
        var begin = position;
        while (position < text.Length)
        {
            var ch = text[position];
            if (inFlow && (ch is ',' or ']' or '}' || (ch == ':' && (position + 1 == text.Length || text[position + 1] is ' ' or ',' or ']' or '}'))))
            {
                break;
            }

            position++;
        }

        return Resolve(text[begin..position].Trim());
    }

    private static void SkipSpaces(string text, ref int position)
    {
        while (position < text.Length && text[position] == ' ')
        {
            position++;
        }
    }

    private static string Unquote(string quoted)
    {
        if (quoted.Length < 2)
        {
            return quoted;
        }

        var inner = quoted[1..^1];
        if (quoted[0] == '\'')
        {
            return inner.Replace("''", "'", StringComparison.Ordinal);
        }

        if (quoted[0] != '"')
        {
            return quoted;
        }

        var builder = new StringBuilder(inner.Length);
        for (var i = 0; i < inner.Length; i++)
        {
            if (inner[i] != '\\' || i + 1 >= inner.Length)
            {
                builder.Append(inner[i]);
                continue;
            }

            i++;
            switch (inner[i])
            {
                case 'n': builder.Append('\n'); break;
                case 't': builder.Append('\t'); break;
                case 'r': builder.Append('\r'); break;
                case '0': builder.Append('\0'); break;
                case '"': builder.Append('"'); break;
                case '\\': builder.Append('\\'); break;
                case '/': builder.Append('/'); break;
                case ' ': builder.Append(' '); break;
                case 'u' when i + 4 < inner.Length:
                    builder.Append((char)int.Parse(inner.AsSpan(i + 1, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                    i += 4;
                    break;
                default:
                    throw new FormatException($"unsupported escape '\\{inner[i]}' in {quoted}");
            }
        }

        return builder.ToString();
    }

    /// <summary>PyYAML's implicit resolvers (YAML 1.1) for the common cases.</summary>
    private static JsonValue? Resolve(string plain)
    {
        switch (plain)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                return null;
            case "true" or "True" or "TRUE" or "yes" or "Yes" or "YES" or "on" or "On" or "ON":
                return JsonValue.Create(true);
            case "false" or "False" or "FALSE" or "no" or "No" or "NO" or "off" or "Off" or "OFF":
                return JsonValue.Create(false);
        }

        if (IntPattern().IsMatch(plain) &&
            long.TryParse(plain.Replace("_", string.Empty, StringComparison.Ordinal), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
        {
            return JsonValue.Create(integer);
        }

        if (FloatPattern().IsMatch(plain) &&
            double.TryParse(plain.Replace("_", string.Empty, StringComparison.Ordinal), NumberStyles.Float, CultureInfo.InvariantCulture, out var real))
        {
            return JsonValue.Create(real);
        }

        return JsonValue.Create(plain);
    }

    private static FormatException Error(Line line, string message) => new($"line {line.Number}: {message}");

    [GeneratedRegex(@"^[-+]?(0|[1-9][0-9_]*)$", RegexOptions.CultureInvariant)]
    private static partial Regex IntPattern();

    [GeneratedRegex(@"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?$", RegexOptions.CultureInvariant)]
    private static partial Regex FloatPattern();
}
