namespace RayClient.Serialization;

/// <summary>
/// Ray's <c>ray.util.client.client_pickler.PickleStub</c>: the persistent id that stands for a
/// cluster object inside a pickle (an ObjectRef, an actor handle, a remote function…). The pickler
/// writes it for every <see cref="IPickleStubSource"/>; the unpickler hands every one it reads to an
/// <see cref="IPickleStubResolver"/>, or returns the stub itself when there is none.
/// Mirrors ray:python/ray/util/client/client_pickler.py (spec §6.2).
/// </summary>
/// <param name="Type">The kind of object: <c>"Object"</c>, <c>"Actor"</c>, <c>"RemoteFunc"</c>, <c>"RemoteActor"</c>, <c>"RemoteMethod"</c>, …</param>
/// <param name="ClientId">The client id of the session (32 hex characters).</param>
/// <param name="RefId">The binary id (28 bytes for objects, 16 for actors).</param>
/// <param name="Name">The method name for <c>"RemoteMethod"</c>, otherwise null.</param>
/// <param name="BaselineOptions">Options dictionary for remote functions and actor classes, otherwise null.</param>
public sealed record PickleStub(string Type, string ClientId, byte[] RefId, string? Name, object? BaselineOptions) : IPickleStubSource
{
    /// <summary>Module of the Python class.</summary>
    internal const string PythonModule = "ray.util.client.client_pickler";

    /// <summary>Name of the Python class.</summary>
    internal const string PythonName = "PickleStub";

    /// <summary>Equality by value, comparing <see cref="RefId"/> by content.</summary>
    /// <param name="other">The other stub.</param>
    public bool Equals(PickleStub? other) =>
        other is not null
        && Type == other.Type
        && ClientId == other.ClientId
        && RefId.AsSpan().SequenceEqual(other.RefId)
        && Name == other.Name
        && PyValueComparer.Instance.Equals(BaselineOptions, other.BaselineOptions);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Type, ClientId, PyValueComparer.Instance.GetHashCode(RefId), Name);

    PickleStub IPickleStubSource.ToPickleStub() => this;

    /// <summary>A readable form, e.g. <c>PickleStub(Object, 00ab…)</c>.</summary>
    public override string ToString() =>
        $"PickleStub({Type}, {Convert.ToHexStringLower(RefId)}{(Name is null ? string.Empty : ", " + Name)})";
}
