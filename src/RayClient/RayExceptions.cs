namespace RayClient;

/// <summary>Base class of every error RayClient raises for Ray-side failures.</summary>
/// <remarks>Misuse of the API (a null argument, a disposed session) throws BCL exceptions instead.</remarks>
public class RayException : Exception
{
    /// <summary>Creates an exception with a message.</summary>
    public RayException(string message) : base(message) { }

    /// <summary>Creates an exception with a message and the exception that caused it.</summary>
    public RayException(string message, Exception? innerException) : base(message, innerException) { }
}

/// <summary>
/// A Python exception raised by a remote task or actor method (Ray's <c>RayTaskError</c>).
/// Carries the Python exception type, its message and the remote traceback.
/// </summary>
public class RayTaskException : RayException
{
    /// <summary>Creates the exception.</summary>
    public RayTaskException(string message, string pythonType, string pythonMessage, string? traceback, Exception? innerException = null)
        : base(message, innerException)
    {
        PythonType = pythonType;
        PythonMessage = pythonMessage;
        PythonTraceback = traceback;
    }

    /// <summary>Qualified Python type of the original exception, e.g. <c>builtins.ValueError</c>.</summary>
    public string PythonType { get; }

    /// <summary>The message of the original Python exception (<c>str(e)</c>).</summary>
    public string PythonMessage { get; }

    /// <summary>The remote Python traceback, when the server sent one.</summary>
    public string? PythonTraceback { get; }
}

/// <summary>An actor died, was killed or could not be created (Ray's <c>RayActorError</c>).</summary>
public class RayActorException : RayException
{
    /// <summary>Creates the exception.</summary>
    public RayActorException(string message, Exception? innerException = null) : base(message, innerException) { }
}

/// <summary>A task was cancelled before it finished (Ray's <c>TaskCancelledError</c>).</summary>
public class RayTaskCancelledException : RayException
{
    /// <summary>Creates the exception.</summary>
    public RayTaskCancelledException(string message, Exception? innerException = null) : base(message, innerException) { }
}

/// <summary>A runtime environment is invalid or could not be set up on the cluster.</summary>
public class RayRuntimeEnvException : RayException
{
    /// <summary>Creates the exception.</summary>
    public RayRuntimeEnvException(string message, Exception? innerException = null) : base(message, innerException) { }
}

/// <summary>A get or wait did not complete within its timeout (Ray's <c>GetTimeoutError</c>).</summary>
public class RayTimeoutException : RayException
{
    /// <summary>Creates the exception.</summary>
    public RayTimeoutException(string message, Exception? innerException = null) : base(message, innerException) { }
}

/// <summary>The server does not know an object or actor id that was used (released, or from another session).</summary>
public class RayObjectNotFoundException : RayException
{
    /// <summary>Creates the exception.</summary>
    public RayObjectNotFoundException(string message, Exception? innerException = null) : base(message, innerException) { }
}

/// <summary>
/// An object is larger than one .NET value can hold (a .NET array has at most
/// <see cref="Array.MaxLength"/> elements); it was not received, and the session goes on.
/// </summary>
public class RayObjectTooLargeException : RayException
{
    /// <summary>Creates the exception.</summary>
    public RayObjectTooLargeException(string message, long size, Exception? innerException = null) : base(message, innerException) => Size = size;

    /// <summary>The object's size in bytes.</summary>
    public long Size { get; }
}

/// <summary>
/// The object store is full (Ray's <c>ObjectStoreFullError</c>): a put or a task result did not
/// fit. Objects stored before are kept; release refs you no longer need
/// (<see cref="ObjectRef.DisposeAsync"/>) and try again, or give the cluster more object store memory.
/// </summary>
public class RayObjectStoreFullException : RayException
{
    /// <summary>Creates the exception.</summary>
    public RayObjectStoreFullException(string message, Exception? innerException = null) : base(message, innerException) { }
}

/// <summary>A value could not be converted between .NET and Python (pickling or unpickling failed).</summary>
public class RaySerializationException : RayException
{
    /// <summary>Creates the exception.</summary>
    public RaySerializationException(string message, Exception? innerException = null) : base(message, innerException) { }
}

/// <summary>
/// The connection to the Ray client server failed, was lost, or the session ended.
/// <see cref="IsTransient"/> tells whether retrying the same operation later can succeed.
/// </summary>
public class RayConnectionException : RayException
{
    /// <summary>Creates the exception.</summary>
    public RayConnectionException(string message, bool isTransient, Exception? innerException = null)
        : base(message, innerException)
    {
        IsTransient = isTransient;
    }

    /// <summary>True when the failure may go away by itself (the network), false when it will not.</summary>
    public bool IsTransient { get; }
}

/// <summary>The address answered, but not as a Ray client server (wrong port, another gRPC service, not HTTP/2).</summary>
public class RayNotARayServerException : RayConnectionException
{
    /// <summary>Creates the exception.</summary>
    public RayNotARayServerException(string message, Exception? innerException = null) : base(message, isTransient: false, innerException) { }
}

/// <summary>
/// The server refused this client's credentials (a missing or wrong token of Ray's token
/// authentication), or the TLS handshake failed (the server's certificate is not trusted, or the
/// server requires a client certificate). Not transient: retrying with the same settings fails again.
/// </summary>
public class RayAuthenticationException : RayConnectionException
{
    /// <summary>Creates the exception.</summary>
    public RayAuthenticationException(string message, Exception? innerException = null) : base(message, isTransient: false, innerException) { }
}

/// <summary>The session was lost: the server forgot it, or it could not be resumed within the reconnect grace period.</summary>
public class RaySessionLostException : RayConnectionException
{
    /// <summary>Creates the exception.</summary>
    public RaySessionLostException(string message, DateTimeOffset lostAt, Exception? innerException = null)
        : base(message, isTransient: false, innerException)
    {
        LostAt = lostAt;
    }

    /// <summary>When the session was declared lost.</summary>
    public DateTimeOffset LostAt { get; }
}

/// <summary>The server runs a Ray version whose conventions this client does not implement.</summary>
public class RayVersionMismatchException : RayConnectionException
{
    /// <summary>Creates the exception.</summary>
    public RayVersionMismatchException(string message, string serverVersion, string supportedVersions)
        : base(message, isTransient: false)
    {
        ServerVersion = serverVersion;
        SupportedVersions = supportedVersions;
    }

    /// <summary>The Ray version the server reported.</summary>
    public string ServerVersion { get; }

    /// <summary>The Ray releases this client supports.</summary>
    public string SupportedVersions { get; }
}
