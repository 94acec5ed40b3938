using System.Collections;
using System.Runtime.CompilerServices;

namespace RayClient.Serialization;

/// <summary>
/// An immutable Python <c>tuple</c>. The pickler writes it as a tuple and the unpickler returns
/// Python tuples as <see cref="PyTuple"/>. Equality is structural (element by element, byte arrays
/// compared by content), so tuples work as dictionary keys as they do in Python.
/// </summary>
public sealed class PyTuple : IReadOnlyList<object?>, IEquatable<PyTuple>, ITuple
{
    private readonly object?[] _items;

    /// <summary>Creates a tuple of the given items (copied). An array passed alone is spread into the tuple, as with any <c>params</c> method.</summary>
    /// <param name="items">The elements, in order.</param>
    public PyTuple(params object?[] items)
    {
        ArgumentNullException.ThrowIfNull(items);
        // Always copy into a true object[]: the caller keeps its array, and a covariant array
        // (a string[] passed as object[]) is not what the tuple should hold.
        _items = new object?[items.Length];
        Array.Copy(items, _items, items.Length);
    }

    private PyTuple(object?[] items, bool _) => _items = items;

    /// <summary>The empty tuple <c>()</c>.</summary>
    public static PyTuple Empty { get; } = new([], false);

    /// <summary>Creates a tuple from a sequence of items.</summary>
    /// <param name="items">The elements, in order.</param>
    public static PyTuple From(IEnumerable<object?> items)
    {
        ArgumentNullException.ThrowIfNull(items);
        object?[] array = [.. items];
        return array.Length == 0 ? Empty : new PyTuple(array, false);
    }

    /// <summary>Wraps an array the caller gives up (no copy); used by the unpickler.</summary>
    internal static PyTuple Own(object?[] items) => items.Length == 0 ? Empty : new PyTuple(items, false);

    /// <summary>The number of elements.</summary>
    public int Count => _items.Length;

    int ITuple.Length => _items.Length;

    /// <summary>The element at <paramref name="index"/>.</summary>
    /// <param name="index">Zero-based position.</param>
    public object? this[int index] => _items[index];

    internal ReadOnlySpan<object?> AsSpan() => _items;

    /// <inheritdoc />
    public IEnumerator<object?> GetEnumerator() => ((IEnumerable<object?>)_items).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _items.GetEnumerator();

    /// <inheritdoc />
    public bool Equals(PyTuple? other)
    {
        if (other is null || other._items.Length != _items.Length)
        {
            return false;
        }

        if (ReferenceEquals(this, other))
        {
            return true;
        }

        for (var i = 0; i < _items.Length; i++)
        {
            if (!PyValueComparer.Instance.Equals(_items[i], other._items[i]))
            {
                return false;
            }
        }

        return true;
    }

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is PyTuple other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(_items.Length);
        foreach (var item in _items)
        {
            hash.Add(PyValueComparer.Instance.GetHashCode(item));
        }

        return hash.ToHashCode();
    }

    /// <summary>The Python <c>repr</c> of the tuple, e.g. <c>(1, 'a')</c>.</summary>
    public override string ToString() => PyRepr.Format(this);

    /// <summary>Structural equality.</summary>
    public static bool operator ==(PyTuple? left, PyTuple? right) => left is null ? right is null : left.Equals(right);

    /// <summary>Structural inequality.</summary>
    public static bool operator !=(PyTuple? left, PyTuple? right) => !(left == right);
}
