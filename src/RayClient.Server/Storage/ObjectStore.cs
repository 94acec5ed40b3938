using System.Buffers;
using System.Collections.Concurrent;
using RayClient.Session;

namespace RayClient.Server.Storage;

/// <summary>One object: a pickled value or a pickled error, set once.</summary>
internal sealed class StoredObject
{
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private byte[]? _pooled;
    private int _references;
    private List<Action>? _waiters;

    public StoredObject(RayId id) => Id = id;

    public RayId Id { get; }

    public Task Ready => _ready.Task;

    public bool IsReady => _ready.Task.IsCompleted;

    /// <summary>The pickle of the value, or of the exception when <see cref="IsError"/>.</summary>
    public ReadOnlyMemory<byte> Data { get; private set; }

    public bool IsError { get; private set; }

    /// <summary>Ids of refs pickled inside the value (kept alive while this object is).</summary>
    public IReadOnlyList<StoredObject>? Contained { get; private set; }

    public bool TrySet(ReadOnlyMemory<byte> data, bool isError, byte[]? pooled = null, IReadOnlyList<StoredObject>? contained = null)
    {
        if (IsReady)
        {
            if (pooled is not null)
            {
                ArrayPool<byte>.Shared.Return(pooled);
            }

            return false;
        }

        Data = data;
        IsError = isError;
        _pooled = pooled;
        Contained = contained;
        List<Action>? waiters;
        lock (_ready)
        {
            _ready.TrySetResult();
            waiters = _waiters;
            _waiters = null;
        }

        foreach (var waiter in waiters ?? [])
        {
            waiter(); // cheap, non-blocking callbacks (queueing a response): no thread hop
        }

        return true;
    }

    /// <summary>Runs <paramref name="callback"/> when the object is set (at once if it already is), on the setting thread.</summary>
    public void OnReady(Action callback)
    {
        lock (_ready)
        {
            if (!_ready.Task.IsCompleted)
            {
                (_waiters ??= []).Add(callback);
                return;
            }
        }

        callback();
    }

    public void AddReference() => Interlocked.Increment(ref _references);

    /// <summary>Drops one reference; returns true when it was the last.</summary>
    public bool RemoveReference() => Interlocked.Decrement(ref _references) == 0;

    public void Free()
    {
        var pooled = Interlocked.Exchange(ref _pooled, null);
        if (pooled is not null && IsReady)
        {
            Data = default;
            ArrayPool<byte>.Shared.Return(pooled);
        }
    }
}

/// <summary>
/// The server's object table. An object lives while a client holds it or a queued task needs it;
/// clients hold what they put, what their tasks return and refs nested in values they got.
/// </summary>
internal sealed class ObjectStore
{
    private readonly ConcurrentDictionary<RayId, StoredObject> _objects = new();
    private long _counter;

    public int Count => _objects.Count;

    public StoredObject Create()
    {
        // No reference yet: the caller takes one (a client hold, a task dependency).
        var entry = new StoredObject(RayId.NewUnique(28, ref _counter));
        _objects[entry.Id] = entry;
        return entry;
    }

    public bool TryGet(RayId id, out StoredObject entry) => _objects.TryGetValue(id, out entry!);

    public void Release(StoredObject entry)
    {
        if (entry.RemoveReference())
        {
            _objects.TryRemove(entry.Id, out _);
            var contained = entry.Contained;
            entry.Free();
            if (contained is not null)
            {
                foreach (var inner in contained)
                {
                    Release(inner);
                }
            }
        }
    }
}
