using System.Collections.Concurrent;

namespace RayClient.Session;

/// <summary>
/// The put-ids of function and actor-class references (a pickle of just <c>module.name</c>), put
/// once per session and reused, as Ray's client caches its function puts (spec §6.7,
/// ray:python/ray/util/client/common.py ClientRemoteFunc._ensure_ref). Concurrent first callers share
/// one put. A put found failed or cancelled is dropped (that caller still gets the failure), so a
/// later call puts again; one that succeeded is kept for the session's life: a reconnect resumes the same server session, where the
/// id stays valid, so nothing is re-sent.
/// </summary>
internal sealed class FunctionPayloadCache
{
    private readonly ConcurrentDictionary<(string Module, string Name), Lazy<Task<RayId>>> _payloads = new();
    private readonly Func<string, string, Task<RayId>> _put;

    /// <param name="put">Puts the reference of <c>module.name</c> and returns its object id.</param>
    public FunctionPayloadCache(Func<string, string, Task<RayId>> put)
    {
        _put = put;
    }

    /// <summary>How many references are cached (puts done or under way).</summary>
    public int Count => _payloads.Count;

    /// <summary>The put-id of <paramref name="module"/>.<paramref name="name"/>; puts it on first use.</summary>
    public Task<RayId> GetOrPut(string module, string name)
    {
        // The static factory with an argument: no closure per call, only when an entry is added.
        var lazy = _payloads.GetOrAdd((module, name), static (key, put) => new Lazy<Task<RayId>>(() => put(key.Module, key.Name)), _put);
        var task = lazy.Value;
        if (task.IsFaulted || task.IsCanceled)
        {
            _payloads.TryRemove(new KeyValuePair<(string, string), Lazy<Task<RayId>>>((module, name), lazy));
        }

        return task;
    }
}
