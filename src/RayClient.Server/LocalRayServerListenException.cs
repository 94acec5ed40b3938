namespace RayClient.Server;

/// <summary>
/// <see cref="LocalRayServer.StartAsync"/> could not listen on a port (taken by another process,
/// or not allowed); the server started nothing that outlives the call.
/// </summary>
public sealed class LocalRayServerListenException : IOException
{
    internal LocalRayServerListenException(string message, int port, Exception innerException)
        : base(message, innerException)
    {
        Port = port;
    }

    /// <summary>The port the server could not listen on.</summary>
    public int Port { get; }

    /// <summary>The error for a port Kestrel could not bind, naming the option that chose it.</summary>
    internal static LocalRayServerListenException For(string what, string option, System.Net.IPAddress address, int port, IOException bindError)
    {
        var endpoint = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]:{port}" : $"{address}:{port}";
        var reason = bindError.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException ? "the address is already in use" : bindError.Message;
        return new LocalRayServerListenException(
            $"The embedded server cannot listen on {endpoint} for {what} ({option}): {reason}. Choose another port, or 0 for a free one.", port, bindError);
    }
}
