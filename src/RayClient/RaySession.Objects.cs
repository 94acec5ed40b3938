using System.Collections;
using System.Runtime.CompilerServices;
using RayClient.Serialization;
using RayClient.Session;

namespace RayClient;

public sealed partial class RaySession : IPickleStubResolver
{
    /// <summary>
    /// Stores <paramref name="value"/> in the cluster's object store (Ray's <c>ray.put</c>). Values
    /// are pickled as the README's value mapping says; <see cref="ObjectRef"/>s inside become Ray
    /// object references on the server. Large payloads are sent in Ray's 5 MiB chunks without copying them.
    /// </summary>
    /// <exception cref="RaySerializationException">The value contains a type that has no Python counterpart.</exception>
    public async System.Threading.Tasks.Task<ObjectRef<T>> PutAsync<T>(T value, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        if (value is ObjectRef)
        {
            throw new ArgumentException("Putting an ObjectRef is not allowed (as in Ray): pass the ref itself to tasks, or put a list that contains it.", nameof(value));
        }

        await AwaitReferencedIdsAsync(value, cancellationToken).ConfigureAwait(false);
        var payload = Pickle(value, "the value to put");
        var id = await _objects.PutAsync(payload, cancellationToken).ConfigureAwait(false);
        var reference = new ObjectRef<T>(this, System.Threading.Tasks.Task.FromResult(id));
        _references.Track(reference);
        return reference;
    }

    /// <summary>Gets the value of <paramref name="reference"/> (Ray's <c>ray.get</c>), waiting until it is ready.</summary>
    /// <param name="reference">The object.</param>
    /// <param name="timeout">How long to wait; null waits as long as it takes.</param>
    /// <param name="cancellationToken">Stops waiting; the remote work goes on.</param>
    /// <exception cref="RayTaskException">The task that makes the value raised an exception; it carries the Python traceback.</exception>
    /// <exception cref="RayTimeoutException">The value was not ready within <paramref name="timeout"/>.</exception>
    /// <exception cref="RayObjectNotFoundException">The server does not know the object (released, or another session's).</exception>
    public async System.Threading.Tasks.Task<T> GetAsync<T>(ObjectRef<T> reference, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reference);
        CheckOwnRef(reference);
        ThrowIfDisposed();
        using var deadline = CreateDeadline(timeout, cancellationToken);
        var token = deadline?.Token ?? cancellationToken;
        RayId id;
        try
        {
            id = await reference.IdTask.WaitAsync(token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && deadline is not null)
        {
            throw new RayTimeoutException($"Get timed out after {timeout!.Value.TotalSeconds:0.###} s: the task producing the object was not even accepted yet.");
        }

        // An asynchronous get on the Datapath: pipelined, resumable after a reconnect.
        var pending = _objects.StartGet(id);
        ReceivedObject result;
        try
        {
            result = await pending.Completion.WaitAsync(token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && deadline is not null)
        {
            var error = new RayTimeoutException($"Get timed out after {timeout!.Value.TotalSeconds:0.###} s: object {id.Hex} is not ready.");
            _objects.Abandon(pending, error);
            throw error;
        }
        catch (OperationCanceledException)
        {
            _objects.Abandon(pending, new OperationCanceledException(cancellationToken));
            throw;
        }

        using var received = result;
        return Decode<T>(received, $"Getting object {id.Hex}");
    }

    /// <summary>Gets several values at once; the requests are pipelined. The result has the order of <paramref name="references"/>.</summary>
    /// <inheritdoc cref="GetAsync{T}(ObjectRef{T}, TimeSpan?, CancellationToken)"/>
    public async System.Threading.Tasks.Task<IReadOnlyList<T>> GetAsync<T>(IEnumerable<ObjectRef<T>> references, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(references);
        var list = references as IReadOnlyList<ObjectRef<T>> ?? references.ToList();
        if (list.Count == 0)
        {
            return [];
        }

        var started = Time.GetUtcNow();
        var tasks = new System.Threading.Tasks.Task<T>[list.Count];
        for (var i = 0; i < list.Count; i++)
        {
            var remaining = timeout is { } t ? t - (Time.GetUtcNow() - started) : (TimeSpan?)null;
            tasks[i] = GetAsync(list[i], remaining is { } r && r < TimeSpan.Zero ? TimeSpan.Zero : remaining, cancellationToken);
        }

        return await System.Threading.Tasks.Task.WhenAll(tasks).ConfigureAwait(false);
    }

    /// <summary>
    /// Waits until <paramref name="numReturns"/> of <paramref name="references"/> are ready, or the
    /// timeout passes (Ray's <c>ray.wait</c>). Both lists keep the input order.
    /// </summary>
    /// <param name="references">Distinct refs of this session.</param>
    /// <param name="numReturns">How many must be ready; 1 to the number of refs.</param>
    /// <param name="timeout">How long to wait; null waits for <paramref name="numReturns"/> refs.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    public async System.Threading.Tasks.Task<WaitResult<T>> WaitAsync<T>(IReadOnlyList<ObjectRef<T>> references, int numReturns = 1, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(references);
        if (numReturns < 1 || numReturns > references.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(numReturns), numReturns, $"numReturns must be between 1 and the number of refs ({references.Count}).");
        }

        if (timeout is { } negative && negative < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must not be negative.");
        }

        ThrowIfDisposed();
        var byId = new Dictionary<RayId, int>(references.Count);
        var ids = new RayId[references.Count];
        for (var i = 0; i < references.Count; i++)
        {
            CheckOwnRef(references[i]);
            var id = await references[i].IdTask.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (!byId.TryAdd(id, i))
            {
                throw new ArgumentException($"The refs passed to WaitAsync must be distinct; {id.Hex} appears twice.", nameof(references));
            }

            ids[i] = id;
        }

        var readyIds = await _objects.WaitAsync(ids, numReturns, timeout, cancellationToken).ConfigureAwait(false);
        var readySet = new HashSet<int>();
        foreach (var id in readyIds)
        {
            if (byId.TryGetValue(id, out var index))
            {
                readySet.Add(index);
            }
        }

        var ready = new List<ObjectRef<T>>(readySet.Count);
        var unready = new List<ObjectRef<T>>(references.Count - readySet.Count);
        for (var i = 0; i < references.Count; i++)
        {
            (readySet.Contains(i) ? ready : unready).Add(references[i]);
        }

        return new WaitResult<T>(ready, unready);
    }

    // ------------------------------------------------------------------------------------------
    // Pickling helpers
    // ------------------------------------------------------------------------------------------
    internal PickledData Pickle(object? value, string what, bool taskArguments = false)
    {
        try
        {
            return PickleWriter.Serialize(value, new PickleWriterOptions { Protocol = PickleProtocol, TaskArguments = taskArguments });
        }
        catch (RaySerializationException ex)
        {
            throw new RaySerializationException($"Cannot send {what} to Python: {ex.Message}", ex);
        }
    }

    internal T Decode<T>(ReceivedObject received, string context)
    {
        if (received.IsError)
        {
            throw RayErrors.FromPythonError(PythonErrorDecoder.Decode(received.Data), context);
        }

        object? value;
        try
        {
            value = PickleReader.Read(received.Data, this);
        }
        catch (Exception ex) when (ex is not RayException)
        {
            throw new RaySerializationException($"{context}: the value could not be unpickled: {ex.Message}", ex);
        }

        if (PythonErrorDecoder.TryDecodeException(value, out var error))
        {
            throw RayErrors.FromPythonError(error, context);
        }

        if (value is ObjectRef inner && typeof(ObjectRef).IsAssignableFrom(typeof(T)))
        {
            return ConvertRef<T>(inner);
        }

        return PyConvert.To<T>(value)!;
    }

    private static T ConvertRef<T>(ObjectRef inner)
    {
        if (inner is T same)
        {
            return same;
        }

        var target = typeof(T);
        if (target.IsGenericType && target.GetGenericTypeDefinition() == typeof(ObjectRef<>))
        {
            var asMethod = inner.GetType().GetMethod(nameof(ObjectRef<object>.As))!.MakeGenericMethod(target.GetGenericArguments()[0]);
            return (T)asMethod.Invoke(inner, null)!;
        }

        throw new RaySerializationException($"Cannot convert an ObjectRef to {target}.");
    }

    object? IPickleStubResolver.Resolve(PickleStub stub)
    {
        switch (stub.Type)
        {
            case "Object":
                // The server registered the nested ref for this client (server_pickler.py); it is
                // released like any other ref once the program drops it.
                var reference = new ObjectRef<object?>(this, System.Threading.Tasks.Task.FromResult(new RayId(stub.RefId)));
                _references.Track(reference);
                return reference;
            case "Actor":
                return new PyActorHandle(this, System.Threading.Tasks.Task.FromResult(new RayId(stub.RefId)), "actor");
            default:
                return stub;
        }
    }

    internal void CheckOwnRef(ObjectRef reference)
    {
        if (!ReferenceEquals(reference.Session, this))
        {
            throw new ArgumentException("The ObjectRef belongs to another RaySession; refs are only valid in the session that made them.", nameof(reference));
        }

        if (reference.IsReleased)
        {
            throw new ObjectDisposedException(reference.ToString(), "The ObjectRef was released (DisposeAsync); the object may be gone from the cluster.");
        }
    }

    /// <summary>Counts a new ref instance for the release sweep.</summary>
    internal ObjectRef<T> Track<T>(ObjectRef<T> reference)
    {
        _references.Track(reference);
        return reference;
    }

    /// <summary>An ObjectRef's DisposeAsync: counts it out now and releases the id if nothing else holds it.</summary>
    internal void ReleaseReference(ObjectRef reference, RayId id)
    {
        if (_connection.IsUsable)
        {
            _references.ReleaseNow(reference, id);
        }
    }

    private Deadline? CreateDeadline(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        if (timeout is not { } value)
        {
            return null;
        }

        if (value < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must not be negative.");
        }

        return new Deadline(value, Time, cancellationToken);
    }

    /// <summary>A caller's timeout on the session's clock, linked with the caller's token.</summary>
    private sealed class Deadline : IDisposable
    {
        private readonly CancellationTokenSource _timer;
        private readonly CancellationTokenSource _linked;

        public Deadline(TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
        {
            _timer = new CancellationTokenSource(timeout, time);
            _linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _timer.Token);
        }

        public CancellationToken Token => _linked.Token;

        public void Dispose()
        {
            _linked.Dispose();
            _timer.Dispose();
        }
    }

    /// <summary>Waits until every ObjectRef inside <paramref name="value"/> knows its id, so it can be pickled.</summary>
    internal async ValueTask AwaitReferencedIdsAsync(object? value, CancellationToken cancellationToken)
    {
        List<ObjectRef>? refs = null;
        CollectRefs(value, ref refs, 0);
        if (refs is null)
        {
            return;
        }

        foreach (var reference in refs)
        {
            CheckOwnRef(reference);
            await reference.IdTask.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    internal static void CollectRefs(object? value, ref List<ObjectRef>? refs, int depth)
    {
        if (depth > 100)
        {
            return; // the pickler reports the cycle with a path
        }

        switch (value)
        {
            case ObjectRef reference:
                (refs ??= []).Add(reference);
                return;
            case PyActorHandle actor:
                (refs ??= []).Add(new ObjectRef<object?>(actor.Session, actor.IdTask)); // waited on like a ref's id
                return;
            case ITuple tuple:
                for (var i = 0; i < tuple.Length; i++)
                {
                    CollectRefs(tuple[i], ref refs, depth + 1);
                }

                return;
            case null or string or byte[] or ValueType or PyGlobal:
                return;
            case IDictionary dictionary:
                foreach (DictionaryEntry entry in dictionary)
                {
                    CollectRefs(entry.Key, ref refs, depth + 1);
                    CollectRefs(entry.Value, ref refs, depth + 1);
                }

                return;
            case IEnumerable enumerable:
                foreach (var item in enumerable)
                {
                    CollectRefs(item, ref refs, depth + 1);
                }

                return;
        }
    }
}

/// <summary>The result of <see cref="RaySession.WaitAsync{T}"/>: the refs that are ready and those that are not, each in input order.</summary>
/// <param name="Ready">Refs whose values are ready.</param>
/// <param name="Unready">Refs still pending.</param>
public sealed record WaitResult<T>(IReadOnlyList<ObjectRef<T>> Ready, IReadOnlyList<ObjectRef<T>> Unready);
