namespace RayClient.Serialization;

/// <summary>
/// Implemented by .NET objects that stand for cluster objects (ObjectRefs, actor handles). The
/// pickler writes them as a <see cref="PickleStub"/> persistent id, as Ray's Python client does
/// (<c>ray.util.client.client_pickler.ClientPickler.persistent_id</c>).
/// </summary>
public interface IPickleStubSource
{
    /// <summary>The stub that identifies this object to the server.</summary>
    PickleStub ToPickleStub();
}
