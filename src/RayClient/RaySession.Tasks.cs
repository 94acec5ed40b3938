namespace RayClient;

public sealed partial class RaySession
{
    /// <summary>
    /// Prepares a call of the Python function <paramref name="function"/> with positional
    /// <paramref name="args"/>; set options on the returned caller and finish with <c>Remote()</c>.
    /// Arguments may be .NET values (see the value mapping) and <see cref="ObjectRef"/>s: a ref
    /// passed directly is replaced by its value before the function runs; refs nested in lists or
    /// dicts arrive as refs, as in Ray.
    /// </summary>
    /// <remarks>Submission (payload cache, ordering, pipelining) lives in <c>Session/TaskSubmitter</c>.</remarks>
    public TaskCaller<TResult> Task<TResult>(PyFunction<TResult> function, params object?[] args)
    {
        ArgumentNullException.ThrowIfNull(function);
        ThrowIfDisposed();
        return new TaskCaller<TResult>(this, function, args ?? [null]);
    }

    /// <summary>Calls <paramref name="function"/> with default options: the same as <c>Task(function, args).Remote()</c>.</summary>
    public ObjectRef<TResult> Call<TResult>(PyFunction<TResult> function, params object?[] args) =>
        Task(function, args).Remote();
}
