using System.Globalization;
using System.Text;

namespace RayClient.Serialization;

/// <summary>
/// Raised inside the writer when a value cannot be pickled; each container it unwinds through adds
/// its part of the path, so that the final <see cref="RaySerializationException"/> says where the
/// value was ("argument 2 → ["key"] → element 3") at no cost on the success path.
/// </summary>
internal sealed class PicklePathException : Exception
{
    private readonly List<PathSegment> _reversedPath = [];

    public PicklePathException(string reason, Exception? inner = null) : base(reason, inner)
    {
    }

    /// <summary>
    /// Adds the part of the path of the container the exception passes through. Called from an
    /// exception filter and returns false, so that the exception keeps unwinding in one pass: a
    /// catch-and-rethrow per level would nest exception dispatches and overflow the stack for a
    /// deeply nested (cyclic) value.
    /// </summary>
    public bool Prepend(PathSegment segment)
    {
        _reversedPath.Add(segment);
        return false;
    }

    public RaySerializationException ToSerializationException(bool taskArguments)
    {
        var path = FormatPath(taskArguments);
        var message = path.Length == 0 ? Message : $"{path}: {Message}";
        return new RaySerializationException(message, InnerException);
    }

    private string FormatPath(bool taskArguments)
    {
        var parts = new List<string>(_reversedPath.Count);
        var start = _reversedPath.Count - 1;
        if (taskArguments && _reversedPath.Count >= 2 && _reversedPath[start].Kind == PathKind.Element)
        {
            var second = _reversedPath[start - 1];
            if (_reversedPath[start].Index == 0 && second.Kind == PathKind.Element)
            {
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"argument {second.Index}"));
                start -= 2;
            }
            else if (_reversedPath[start].Index == 1 && second.Kind == PathKind.Value)
            {
                parts.Add($"keyword argument {FormatKey(second.Key)}");
                start -= 2;
            }
        }

        for (var i = start; i >= 0; i--)
        {
            parts.Add(_reversedPath[i].ToString());
        }

        if (parts.Count > 12)
        {
            // A cycle unwinds through a thousand levels: keep both ends.
            parts = [.. parts[..6], $"… ({parts.Count - 10} more) …", .. parts[^4..]];
        }

        return string.Join(" → ", parts);
    }

    internal static string FormatKey(object? key) => key switch
    {
        string s => Quote(s),
        null => "None",
        IFormattable f when key is not Enum => f.ToString(null, CultureInfo.InvariantCulture),
        _ => PyRepr.Format(key, 80),
    };

    private static string Quote(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (var c in s.Length > 80 ? s[..80] + "…" : s)
        {
            sb.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                _ => c.ToString(),
            });
        }

        return sb.Append('"').ToString();
    }
}

/// <summary>What a path segment designates.</summary>
internal enum PathKind
{
    /// <summary>An element of a list, tuple or set, by position.</summary>
    Element,

    /// <summary>The value stored under a dictionary key.</summary>
    Value,

    /// <summary>A dictionary key, by position.</summary>
    Key,

    /// <summary>A named part (the callable of a <see cref="PyReduce"/>, a stub's options…).</summary>
    Named,
}

/// <summary>One step of the path to a value inside the pickled graph.</summary>
internal readonly record struct PathSegment(PathKind Kind, int Index, object? Key, string? Name)
{
    public static PathSegment Element(int index) => new(PathKind.Element, index, null, null);

    public static PathSegment Value(object? key) => new(PathKind.Value, 0, key, null);

    public static PathSegment KeyAt(int index) => new(PathKind.Key, index, null, null);

    public static PathSegment Named(string name) => new(PathKind.Named, 0, null, name);

    public override string ToString() => Kind switch
    {
        PathKind.Element => string.Create(CultureInfo.InvariantCulture, $"element {Index}"),
        PathKind.Value => $"[{PicklePathException.FormatKey(Key)}]",
        PathKind.Key => string.Create(CultureInfo.InvariantCulture, $"key #{Index}"),
        _ => Name ?? string.Empty,
    };
}
