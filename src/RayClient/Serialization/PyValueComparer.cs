using System.Runtime.CompilerServices;

namespace RayClient.Serialization;

/// <summary>
/// Equality for unpickled values used as dictionary keys and set elements: byte arrays and
/// <see cref="PyTuple"/>s compare by content (Python compares <c>bytes</c> and tuples by value),
/// everything else with its own <see cref="object.Equals(object)"/>.
/// </summary>
internal sealed class PyValueComparer : IEqualityComparer<object?>
{
    public static PyValueComparer Instance { get; } = new();

    public new bool Equals(object? x, object? y)
    {
        if (ReferenceEquals(x, y))
        {
            return true;
        }

        if (x is null || y is null)
        {
            return false;
        }

        if (x is byte[] a)
        {
            return y is byte[] b && a.AsSpan().SequenceEqual(b);
        }

        if (x is PyTuple t)
        {
            EnsureStack();
            return y is PyTuple u && t.Equals(u);
        }

        return x.Equals(y);
    }

    public int GetHashCode(object? obj)
    {
        switch (obj)
        {
            case null:
                return 0;
            case byte[] bytes:
                var hash = new HashCode();
                hash.AddBytes(bytes);
                return hash.ToHashCode();
            case PyTuple tuple:
                EnsureStack();
                return tuple.GetHashCode();
            default:
                return obj.GetHashCode();
        }
    }

    /// <summary>
    /// Tuples nest without limit in a pickle; comparing or hashing them recurses. Fail with the
    /// library's exception (Python raises RecursionError) before the stack runs out.
    /// </summary>
    private static void EnsureStack()
    {
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack())
        {
            throw new RaySerializationException("The tuple is nested too deeply to be hashed or compared (Python would raise RecursionError).");
        }
    }
}
