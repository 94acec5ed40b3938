namespace RayClient.Serialization;

/// <summary>
/// Turns the persistent ids the unpickler meets back into .NET objects (for example a
/// <c>PickleStub("Object", …)</c> into an ObjectRef), as Ray's <c>ServerUnpickler.persistent_load</c> does.
/// </summary>
public interface IPickleStubResolver
{
    /// <summary>The object that replaces <paramref name="stub"/> in the unpickled value.</summary>
    /// <param name="stub">The persistent id read from the pickle.</param>
    object? Resolve(PickleStub stub);
}
