using RayClient.Session;

namespace RayClient;

public sealed partial class RaySession
{
    /// <summary>Prepares the creation of an actor of <paramref name="actorClass"/> with constructor <paramref name="args"/>; finish with <c>Remote()</c>.</summary>
    public ActorCreator Actor(PyActorClass actorClass, params object?[] args)
    {
        ArgumentNullException.ThrowIfNull(actorClass);
        ThrowIfDisposed();
        return new ActorCreator(this, actorClass, args ?? [null]);
    }

    /// <summary>Finds a named actor (Ray's <c>ray.get_actor</c>).</summary>
    /// <param name="name">The actor's name.</param>
    /// <param name="rayNamespace">Its namespace; null for the job's. The handle reports both as its <see cref="PyActorHandle.Name"/> and <see cref="PyActorHandle.Namespace"/>.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="RayException">No live actor has that name.</exception>
    public async System.Threading.Tasks.Task<PyActorHandle> GetActorAsync(string name, string? rayNamespace = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var id = _submitter.SubmitNamedActorLookup(name, rayNamespace);
        await id.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new PyActorHandle(this, id, name, name, rayNamespace);
    }

    /// <summary>Named actors of the job's namespace, or of every namespace.</summary>
    public async System.Threading.Tasks.Task<IReadOnlyList<NamedActorInfo>> ListNamedActorsAsync(bool allNamespaces = false, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        return await _cluster.ListNamedActorsAsync(allNamespaces, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Kills an actor (Ray's <c>ray.kill</c>). With <paramref name="noRestart"/> false it restarts if it has restarts left.</summary>
    public async System.Threading.Tasks.Task KillAsync(PyActorHandle actor, bool noRestart = true, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(actor);
        ThrowIfDisposed();
        var id = await actor.IdTask.WaitAsync(cancellationToken).ConfigureAwait(false);
        await _cluster.KillActorAsync(id, noRestart, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Cancels the task that makes <paramref name="reference"/> (Ray's <c>ray.cancel</c>): a queued task
    /// never runs; a running one is interrupted, or its worker killed with <paramref name="force"/>.
    /// A get of the ref then throws <see cref="RayTaskCancelledException"/>.
    /// </summary>
    public async System.Threading.Tasks.Task CancelAsync(ObjectRef reference, bool force = false, bool recursive = true, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reference);
        CheckOwnRef(reference);
        ThrowIfDisposed();
        var id = await reference.IdTask.WaitAsync(cancellationToken).ConfigureAwait(false);
        await _cluster.CancelTaskAsync(id, force, recursive, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Releases one id on the server (a handle's DisposeAsync); a closed session has nothing left to release.</summary>
    internal System.Threading.Tasks.Task ReleaseAsync(RayId id) => _objects.ReleaseAsync(id);

    /// <summary>
    /// Yields the refs as their values become ready, in completion order (the <c>ray.wait</c> loop,
    /// written once). A ref whose task failed is yielded too; its GetAsync throws.
    /// </summary>
    public async IAsyncEnumerable<ObjectRef<T>> AsCompletedAsync<T>(
        IEnumerable<ObjectRef<T>> references,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(references);
        var pending = references.Select(r => (Ref: r, Done: (System.Threading.Tasks.Task)GetAsync(r, cancellationToken: cancellationToken))).ToList();
        while (pending.Count > 0)
        {
            var finished = await System.Threading.Tasks.Task.WhenAny(pending.Select(p => p.Done)).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            var index = pending.FindIndex(p => p.Done == finished);
            var item = pending[index];
            pending.RemoveAt(index);
            _ = item.Done.Exception; // observed: the caller sees it through GetAsync
            yield return item.Ref;
        }
    }

    internal ObjectRef<T> TrackedRef<T>(System.Threading.Tasks.Task<RayId> id)
    {
        var reference = new ObjectRef<T>(this, id);
        _references.Track(reference);
        return reference;
    }
}
