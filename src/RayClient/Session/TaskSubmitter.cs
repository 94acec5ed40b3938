using Google.Protobuf;
using Ray.Rpc;
using RayClient.Serialization;

namespace RayClient.Session;

/// <summary>
/// Task submission of one session (functions, actor creations, actor methods, named-actor
/// lookups): the function-payload cache, the ClientTask requests and the submit ordering. Calls
/// whose inputs are all known are pickled and queued on the Datapath at once (the pipelined fast
/// path); the others, and every call after them, wait their turn, so the server sees calls in the
/// order they were made (ray:python/ray/util/client/worker.py Worker._call_schedule_for_task).
/// </summary>
internal sealed class TaskSubmitter
{
    private readonly RaySession _session;
    private readonly RayConnection _connection;
    private readonly FunctionPayloadCache _functionPayloads;
    private readonly object _submitLock = new();
    private Task _submitTail = Task.CompletedTask;

    public TaskSubmitter(RaySession session, RayConnection connection)
    {
        _session = session;
        _connection = connection;
        _functionPayloads = new FunctionPayloadCache(PutFunctionAsync);
    }

    /// <summary>Submits a call of a Python function; the result ref is returned at once.</summary>
    public ObjectRef<TResult> SubmitFunction<TResult>(
        PyFunction<TResult> function, object?[] args, Dictionary<string, object?>? kwargs, TaskOptionsBuilder options)
    {
        _session.ThrowIfDisposed();
        var name = function.FunctionName[(function.FunctionName.LastIndexOf('.') + 1)..];
        var ids = Submit(
            ClientTask.Types.RemoteExecType.Function,
            FunctionPayloadId(function.ModuleName, function.FunctionName),
            name,
            rayNamespace: null,
            args,
            kwargs,
            options,
            returns: 1,
            $"Calling {function}");
        return _session.Track(new ObjectRef<TResult>(_session, ids[0]));
    }

    /// <summary>Submits the creation of an actor of <paramref name="module"/>.<paramref name="className"/>; returns its actor id.</summary>
    public Task<RayId> SubmitActorCreation(string module, string className, string name, object?[] args, TaskOptionsBuilder options, string context) =>
        Submit(ClientTask.Types.RemoteExecType.Actor, FunctionPayloadId(module, className), name, rayNamespace: null, args, kwargs: null, options, returns: 1, context)[0];

    /// <summary>Submits a call of method <paramref name="method"/> on an actor; returns the result's object id.</summary>
    public Task<RayId> SubmitActorMethod(Task<RayId> actorId, string method, object?[] args, Dictionary<string, object?>? kwargs, TaskOptionsBuilder options, string context) =>
        Submit(ClientTask.Types.RemoteExecType.Method, actorId, method, rayNamespace: null, args, kwargs, options, returns: 1, context)[0];

    /// <summary>Looks up a named actor (Ray's <c>ray.get_actor</c> is a NAMED_ACTOR task); returns its actor id.</summary>
    public Task<RayId> SubmitNamedActorLookup(string name, string? rayNamespace) =>
        Submit(ClientTask.Types.RemoteExecType.NamedActor, Task.FromResult(new RayId([])), name, rayNamespace, [], kwargs: null, new TaskOptionsBuilder(), returns: 1, $"Looking up actor '{name}'")[0];

    /// <summary>
    /// The put-id of a function or actor class reference, put once per session and reused
    /// (see <see cref="FunctionPayloadCache"/>).
    /// </summary>
    public Task<RayId> FunctionPayloadId(string module, string name) => _functionPayloads.GetOrPut(module, name);

    /// <summary>
    /// Builds and submits one ClientTask of any kind (function, actor creation, method, named-actor
    /// lookup); returns the tasks of the ids its ticket will carry.
    /// </summary>
    private Task<RayId>[] Submit(
        ClientTask.Types.RemoteExecType type,
        Task<RayId> payload,
        string name,
        string? rayNamespace,
        object?[] args,
        Dictionary<string, object?>? kwargs,
        TaskOptionsBuilder options,
        int returns,
        string context)
    {
        _session.ThrowIfDisposed();
        var idSources = new TaskCompletionSource<RayId>[returns];
        for (var i = 0; i < returns; i++)
        {
            idSources[i] = new TaskCompletionSource<RayId>(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        List<ObjectRef>? refs = null;
        RaySession.CollectRefs(args, ref refs, 0);
        RaySession.CollectRefs(kwargs, ref refs, 0);
        var envUpload = options.RuntimeEnv is { } taskEnv && HasLocalPackages(taskEnv) ? UploadTaskEnvAsync(taskEnv) : null;
        Submit(new Submission(
            payload,
            refs,
            envUpload,
            payloadId =>
            {
                if (envUpload is not null)
                {
                    options.RuntimeEnv = envUpload.Result;
                }

                var optionsDict = options.ToPythonDict();
                var task = new ClientTask
                {
                    Type = type,
                    Name = name,
                    PayloadId = UnsafeByteOperations.UnsafeWrap(payloadId.Bytes),
                    ClientId = _connection.ClientId,
                    Namespace = rayNamespace ?? string.Empty,
                };
                if (optionsDict is not null)
                {
                    task.Options = new TaskOptions { PickledOptions = UnsafeByteOperations.UnsafeWrap(PickleWriter.SerializeToArray(optionsDict, new PickleWriterOptions { Protocol = 4 })) };
                }

                var data = _session.Pickle(new PyTuple(new PyTuple(args), kwargs ?? new Dictionary<string, object?>()), $"the arguments of {context}", taskArguments: true);
                return new PendingCall(new DataRequest { Task = task }, data);
            },
            idSources,
            context));
        var ids = new Task<RayId>[returns];
        for (var i = 0; i < returns; i++)
        {
            ids[i] = idSources[i].Task;
        }

        return ids;
    }

    private async Task<RayId> PutFunctionAsync(string module, string name)
    {
        var payload = PickleWriter.Serialize(new PyGlobal(module, name), new PickleWriterOptions { Protocol = 4 });
        var response = await _connection.SendAsync(new DataRequest { Put = new PutRequest() }, payload).ConfigureAwait(false);
        if (!response.Put.Valid)
        {
            throw RayErrors.FromPythonError(PythonErrorDecoder.Decode(response.Put.Error.Memory), $"The server could not load the Python function {module}.{name}");
        }

        return new RayId(response.Put.Id.ToByteArray());
    }

    /// <summary>
    /// Sends a submission in call order. When everything it waits for is known, it is pickled and
    /// queued at once (the pipelined fast path); otherwise it and every later submission wait, so
    /// the server still sees calls in the order they were made.
    /// </summary>
    private void Submit(Submission submission)
    {
        lock (_submitLock)
        {
            if (_submitTail.IsCompleted && submission.FirstWait(t => !t.IsCompleted) is null)
            {
                SendSubmission(submission);
                return;
            }

            _submitTail = SubmitLaterAsync(_submitTail, submission);
        }
    }

    private async Task SubmitLaterAsync(Task previous, Submission submission)
    {
        await previous.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        foreach (var wait in submission.Waits())
        {
            await wait.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        lock (_submitLock)
        {
            SendSubmission(submission);
        }
    }

    private void SendSubmission(Submission submission)
    {
        try
        {
            var failed = submission.FirstWait(t => !t.IsCompletedSuccessfully);
            if (failed is not null)
            {
                var error = failed.Exception?.InnerException ?? new TaskCanceledException(failed);
                FailAll(submission.ReturnIds, error is RayException ? error : new RayException($"{submission.Context}: an argument could not be made: {error.Message}", error));
                return;
            }

            if (submission.Refs is { } refs)
            {
                foreach (var reference in refs)
                {
                    _session.CheckOwnRef(reference);
                }
            }

            var pending = submission.Build(submission.Payload.Result);
            pending.OnCompleted = (response, error) => OnTicket(response, error, submission.ReturnIds, submission.Context);
            _connection.Enqueue(pending);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            FailAll(submission.ReturnIds, ex);
        }
    }

    private static void OnTicket(DataResponse? response, Exception? error, TaskCompletionSource<RayId>[] returnIds, string context)
    {
        if (response is not { TaskTicket: { } ticket })
        {
            FailAll(returnIds, error ?? new RayException($"{context}: the server did not answer with a ticket."));
            return;
        }

        if (!ticket.Valid)
        {
            FailAll(returnIds, RayErrors.FromPythonError(PythonErrorDecoder.Decode(ticket.Error.Memory), context));
            return;
        }

        for (var i = 0; i < returnIds.Length; i++)
        {
            if (i < ticket.ReturnIds.Count)
            {
                returnIds[i].TrySetResult(new RayId(ticket.ReturnIds[i].ToByteArray()));
            }
            else
            {
                returnIds[i].TrySetException(new RayException($"{context}: the server returned {ticket.ReturnIds.Count} object ids, but {returnIds.Length} were expected."));
            }
        }
    }

    private static bool HasLocalPackages(RuntimeEnv env) =>
        (env.WorkingDir is { } dir && !RayClient.Packaging.RuntimeEnvUris.IsUri(dir))
        || (env.PyModules?.Any(m => !RayClient.Packaging.RuntimeEnvUris.IsUri(m)) ?? false);

    /// <summary>
    /// Uploads a task's local packages through the KV RPCs. Not pinned: Ray's specific servers do
    /// not serve PinRuntimeEnvURI after Init, and the task refers to the package right away.
    /// </summary>
    private Task<RuntimeEnv> UploadTaskEnvAsync(RuntimeEnv env) =>
        RayClient.Packaging.RuntimeEnvUploader.UploadLocalPackagesAsync(
            env, new KvPackageStore(_connection), new RayClient.Packaging.UploadOptions { PinExpirationSeconds = 0 }, _connection.Settings.UploadProgress, _connection.Lifetime);

    private static void FailAll(TaskCompletionSource<RayId>[] sources, Exception error)
    {
        foreach (var source in sources)
        {
            source.TrySetException(error);
        }
    }

    /// <summary>
    /// One submission: what it waits for (the payload id, referenced objects' ids, a task env
    /// upload), how to build its request once they are known, and the ids its ticket resolves.
    /// </summary>
    private sealed record Submission(
        Task<RayId> Payload,
        List<ObjectRef>? Refs,
        Task? Prerequisite,
        Func<RayId, PendingCall> Build,
        TaskCompletionSource<RayId>[] ReturnIds,
        string Context)
    {
        public IEnumerable<Task> Waits()
        {
            yield return Payload;
            if (Prerequisite is not null)
            {
                yield return Prerequisite;
            }

            if (Refs is not null)
            {
                foreach (var reference in Refs)
                {
                    yield return reference.IdTask;
                }
            }
        }

        /// <summary>The first task this submission waits for that matches <paramref name="match"/>, or null; no iterator on the fast path.</summary>
        public Task? FirstWait(Func<Task, bool> match)
        {
            if (match(Payload))
            {
                return Payload;
            }

            if (Prerequisite is not null && match(Prerequisite))
            {
                return Prerequisite;
            }

            if (Refs is not null)
            {
                foreach (var reference in Refs)
                {
                    if (match(reference.IdTask))
                    {
                        return reference.IdTask;
                    }
                }
            }

            return null;
        }
    }
}
