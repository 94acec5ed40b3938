using System.Buffers.Binary;

namespace RayClient.Server;

/// <summary>
/// A Ray binary id (28-byte object ids, 16-byte actor ids) as the server keys and mints them. The
/// client has a RayId of its own (it only compares ids, never mints them): the server cannot see
/// the client's internals, and one internal type compiled into both assemblies would be ambiguous
/// in the test projects, which see the internals of both.
/// </summary>
internal readonly struct RayId : IEquatable<RayId>
{
    private static readonly byte[] Prefix = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);

    private readonly byte[] _bytes;
    private readonly int _hash;

    public RayId(byte[] bytes)
    {
        _bytes = bytes;
        var hash = new HashCode();
        hash.AddBytes(bytes);
        _hash = hash.ToHashCode();
    }

    public byte[] Bytes => _bytes;

    public string Hex => Convert.ToHexStringLower(_bytes);

    public static bool operator ==(RayId left, RayId right) => left.Equals(right);

    public static bool operator !=(RayId left, RayId right) => !left.Equals(right);

    /// <summary>Creates an id of <paramref name="length"/> bytes: a per-process random prefix followed by a counter.</summary>
    public static RayId NewUnique(int length, ref long counter)
    {
        var bytes = new byte[length];
        Prefix.AsSpan(0, length - 8).CopyTo(bytes);
        BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(length - 8), Interlocked.Increment(ref counter));
        return new RayId(bytes);
    }

    public bool Equals(RayId other) => _hash == other._hash && _bytes.AsSpan().SequenceEqual(other._bytes);

    public override bool Equals(object? obj) => obj is RayId other && Equals(other);

    public override int GetHashCode() => _hash;

    public override string ToString() => Hex;
}
