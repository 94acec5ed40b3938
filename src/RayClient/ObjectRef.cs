using System.Runtime.CompilerServices;
using RayClient.Serialization;
using RayClient.Session;

namespace RayClient;

/// <summary>
/// A reference to an object in the cluster's object store (a put value or a task result), as Ray's
/// <c>ObjectRef</c>. The id is assigned by the server, so a ref returned by <c>Remote()</c> may not
/// know it yet; every operation waits for it. Refs the program no longer holds are released on
/// the server automatically (see <see cref="RaySession"/>).
/// </summary>
public abstract class ObjectRef : IPickleStubSource, IEquatable<ObjectRef>, IAsyncDisposable
{
    private int _released;

    private protected ObjectRef(RaySession session, Task<RayId> id)
    {
        Session = session;
        IdTask = id;
    }

    /// <summary>The session the object belongs to.</summary>
    public RaySession Session { get; }

    internal Task<RayId> IdTask { get; }

    /// <summary>The reference tracker's entry for this instance (set under the tracker's lock).</summary>
    internal TrackToken? Tracking { get; set; }

    /// <summary>True once <see cref="DisposeAsync"/> released this ref; it can no longer be used.</summary>
    public bool IsReleased => Volatile.Read(ref _released) != 0;

    /// <summary>
    /// Releases the object now instead of when the garbage collector finds this ref unreachable:
    /// once no other ref of the session names it, the server frees it (and its memory is reused
    /// by what the program sends next). Using this ref afterwards throws
    /// <see cref="ObjectDisposedException"/>; tasks already submitted with it keep their own reference.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        RayId id;
        try
        {
            id = await IdTask.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RayException or OperationCanceledException or ObjectDisposedException)
        {
            return; // never created on the server: nothing to release
        }

        Session.ReleaseReference(this, id);
    }

    /// <summary>True once the server has assigned the object id.</summary>
    public bool IsIdKnown => IdTask.IsCompletedSuccessfully;

    /// <summary>The object id in hex (28 bytes). Throws if the id is not known yet: see <see cref="GetIdAsync"/>.</summary>
    public string Hex => IdTask.IsCompletedSuccessfully
        ? IdTask.Result.Hex
        : throw new InvalidOperationException("The object id is not known yet; await GetIdAsync() first.");

    /// <summary>Waits for the server to assign the id (a task submission's ticket) and returns it in hex.</summary>
    /// <exception cref="RayException">The submission failed (for example, the function does not exist).</exception>
    public async Task<string> GetIdAsync(CancellationToken cancellationToken = default)
    {
        var id = await IdTask.WaitAsync(cancellationToken).ConfigureAwait(false);
        return id.Hex;
    }

    PickleStub IPickleStubSource.ToPickleStub() =>
        new("Object", Session.ClientId, IdTask.Result.Bytes, null, null);

    /// <inheritdoc />
    public bool Equals(ObjectRef? other) =>
        other is not null && (ReferenceEquals(this, other)
            || (IdTask.IsCompletedSuccessfully && other.IdTask.IsCompletedSuccessfully && IdTask.Result == other.IdTask.Result));

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is ObjectRef other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => IdTask.IsCompletedSuccessfully ? IdTask.Result.GetHashCode() : RuntimeHelpers.GetHashCode(this);

    /// <inheritdoc />
    public override string ToString() => IdTask.IsCompletedSuccessfully ? $"ObjectRef({IdTask.Result.Hex})" : "ObjectRef(pending)";
}

/// <summary>A typed <see cref="ObjectRef"/>: <see cref="GetAsync"/> converts the Python value to <typeparamref name="T"/>.</summary>
/// <typeparam name="T">The .NET type the value is read as (see the value mapping in the README).</typeparam>
public sealed class ObjectRef<T> : ObjectRef
{
    internal ObjectRef(RaySession session, Task<RayId> id) : base(session, id)
    {
    }

    /// <summary>Gets the value (waits until it is ready).</summary>
    /// <param name="timeout">How long to wait; null waits until the value is ready.</param>
    /// <param name="cancellationToken">Stops waiting (the remote work is not cancelled).</param>
    /// <exception cref="RayTaskException">The task raised a Python exception.</exception>
    /// <exception cref="RayTimeoutException">The value was not ready within <paramref name="timeout"/>.</exception>
    public Task<T> GetAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        Session.GetAsync(this, timeout, cancellationToken);

    /// <summary>Makes <c>await objectRef</c> get the value.</summary>
    public TaskAwaiter<T> GetAwaiter() => GetAsync().GetAwaiter();

    /// <summary>The same object read as another type: a ref of its own, which keeps the object alive as long as it lives.</summary>
    /// <exception cref="ObjectDisposedException">This ref was released.</exception>
    public ObjectRef<TOther> As<TOther>()
    {
        ObjectDisposedException.ThrowIf(IsReleased, this);
        return Session.Track(new ObjectRef<TOther>(Session, IdTask));
    }
}
