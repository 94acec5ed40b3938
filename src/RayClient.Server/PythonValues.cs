using System.Text.Json.Nodes;

namespace RayClient.Server;

/// <summary>Helpers for values unpickled from Python (dicts, lists, scalars).</summary>
internal static class PythonValues
{
    /// <summary>
    /// A pickled Python value as JSON, built as a JsonNode so the server needs no reflection-based
    /// serialization (file-based apps and trimmed apps turn it off).
    /// </summary>
    public static JsonNode? ToJsonNode(object? value) => value switch
    {
        null => null,
        string text => JsonValue.Create(text),
        bool flag => JsonValue.Create(flag),
        int number => JsonValue.Create(number),
        long number => JsonValue.Create(number),
        double number => JsonValue.Create(number),
        System.Numerics.BigInteger big => JsonValue.Create((double)big),
        byte[] bytes => JsonValue.Create(Convert.ToBase64String(bytes)),
        System.Collections.IDictionary dict => new JsonObject(Entries(dict).Select(e =>
            KeyValuePair.Create(Convert.ToString(e.Key, System.Globalization.CultureInfo.InvariantCulture)!, ToJsonNode(e.Value)))),
        System.Collections.IEnumerable items => new JsonArray([.. items.Cast<object?>().Select(ToJsonNode)]),
        _ => JsonValue.Create(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)),
    };

    /// <summary>A dictionary's entries (Cast&lt;DictionaryEntry&gt; fails on generic dictionaries, which enumerate KeyValuePairs).</summary>
    public static IEnumerable<System.Collections.DictionaryEntry> Entries(System.Collections.IDictionary dict)
    {
        var enumerator = dict.GetEnumerator();
        while (enumerator.MoveNext())
        {
            yield return enumerator.Entry;
        }
    }
}
