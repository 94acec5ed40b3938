using System.Text.Json;
using System.Text.Json.Nodes;

namespace RayClient.Packaging;

/// <summary>Reading runtime-env JSON with Ray's type rules and error messages that name the field.</summary>
internal static class RuntimeEnvJson
{
    /// <summary>Python's name for the JSON value's type, as Ray's messages print it.</summary>
    public static string PyType(JsonNode? node) => node?.GetValueKind() switch
    {
        null or JsonValueKind.Null => "NoneType",
        JsonValueKind.String => "str",
        JsonValueKind.True or JsonValueKind.False => "bool",
        JsonValueKind.Number => IsInteger(node) ? "int" : "float",
        JsonValueKind.Array => "list",
        JsonValueKind.Object => "dict",
        _ => "unknown",
    };

    public static bool IsString(JsonNode? node) => node?.GetValueKind() == JsonValueKind.String;

    public static string ReadString(JsonNode? node, string field)
    {
        if (!IsString(node))
        {
            throw new RayRuntimeEnvException($"runtime_env['{field}'] must be a string, got {PyType(node)}.");
        }

        return node!.GetValue<string>();
    }

    public static bool ReadBool(JsonNode? node, string field)
    {
        return node?.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new RayRuntimeEnvException($"runtime_env['{field}'] must be of type bool, got {PyType(node)}."),
        };
    }

    public static int ReadInt(JsonNode? node, string field)
    {
        if (node?.GetValueKind() != JsonValueKind.Number || !IsInteger(node) || !node.AsValue().TryGetValue<int>(out var value))
        {
            throw new RayRuntimeEnvException($"runtime_env['{field}'] must be of type int, got {PyType(node)}.");
        }

        return value;
    }

    public static List<string> ReadStringList(JsonNode? node, string field, string expected = "a list of strings")
    {
        if (node is not JsonArray array)
        {
            throw new RayRuntimeEnvException($"runtime_env['{field}'] must be {expected}, got {PyType(node)}.");
        }

        var list = new List<string>(array.Count);
        foreach (var item in array)
        {
            if (!IsString(item))
            {
                throw new RayRuntimeEnvException($"runtime_env['{field}'] must be {expected}, got an element of type {PyType(item)}.");
            }

            list.Add(item!.GetValue<string>());
        }

        return list;
    }

    public static Dictionary<string, string> ReadStringMap(JsonNode? node, string field)
    {
        if (node is not JsonObject obj)
        {
            throw new RayRuntimeEnvException($"runtime_env['{field}'] must be of type Dict[str, str], got {PyType(node)}.");
        }

        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in obj)
        {
            if (!IsString(value))
            {
                throw new RayRuntimeEnvException(
                    $"runtime_env['{field}'] must be of type Dict[str, str]: the value of '{key}' is of type {PyType(value)} (write it as a string).");
            }

            map[key] = value!.GetValue<string>();
        }

        return map;
    }

    public static JsonArray ToArray(IEnumerable<string> items)
    {
        var array = new JsonArray();
        foreach (var item in items)
        {
            array.Add(JsonValue.Create(item));
        }

        return array;
    }

    /// <summary>Converts JSON to the plain values the pickler writes: str, bool, int/long, float, list, dict, None.</summary>
    public static object? ToPython(JsonNode? node)
    {
        switch (node)
        {
            case null:
                return null;
            case JsonObject obj:
                var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (key, value) in obj)
                {
                    dict[key] = ToPython(value);
                }

                return dict;
            case JsonArray array:
                var list = new List<object?>(array.Count);
                foreach (var item in array)
                {
                    list.Add(ToPython(item));
                }

                return list;
        }

        var scalar = node.AsValue();
        switch (scalar.GetValueKind())
        {
            case JsonValueKind.String:
                return scalar.GetValue<string>();
            case JsonValueKind.True:
                return true;
            case JsonValueKind.False:
                return false;
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.Number:
                if (scalar.TryGetValue<int>(out var i))
                {
                    return i;
                }

                if (scalar.TryGetValue<long>(out var l))
                {
                    return l;
                }

                if (IsInteger(scalar) && scalar.TryGetValue<decimal>(out var big))
                {
                    // Larger than a long: keep the digits (Python ints are unbounded).
                    return System.Numerics.BigInteger.Parse(big.ToString(System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);
                }

                return scalar.GetValue<double>();
            default:
                throw new RayRuntimeEnvException($"Unsupported JSON value {scalar.ToJsonString()} in the runtime env.");
        }
    }

    private static bool IsInteger(JsonNode node)
    {
        var text = node.ToJsonString();
        return text.IndexOfAny(['.', 'e', 'E']) < 0;
    }
}
