namespace RayClient.Session;

/// <summary>A Ray binary id (28-byte object ids, 16-byte actor ids) usable as a dictionary key.</summary>
internal readonly struct RayId : IEquatable<RayId>
{
    private readonly byte[] _bytes;
    private readonly int _hash;

    public RayId(byte[] bytes)
    {
        _bytes = bytes;
        var hash = new HashCode();
        hash.AddBytes(bytes);
        _hash = hash.ToHashCode();
    }

    public static RayId FromSpan(ReadOnlySpan<byte> span) => new(span.ToArray());

    public byte[] Bytes => _bytes;

    public bool IsEmpty => _bytes is null || _bytes.Length == 0;

    public string Hex => Convert.ToHexStringLower(_bytes);

    public bool Equals(RayId other) => _hash == other._hash && _bytes.AsSpan().SequenceEqual(other._bytes);

    public override bool Equals(object? obj) => obj is RayId other && Equals(other);

    public override int GetHashCode() => _hash;

    public override string ToString() => Hex;

    public static bool operator ==(RayId left, RayId right) => left.Equals(right);

    public static bool operator !=(RayId left, RayId right) => !left.Equals(right);
}
