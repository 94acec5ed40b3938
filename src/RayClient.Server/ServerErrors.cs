using Google.Protobuf;
using RayClient.Server.Protocol;
using RayClient.Serialization;

namespace RayClient.Server;

/// <summary>Error pickles in the shapes Ray's server sends (spec §6.6): <c>REDUCE(class, (message,))</c>.</summary>
internal static class ServerErrors
{
    public static byte[] Pickle(string module, string type, string message) =>
        PickleSerializer.Serialize(new PyReduce(new PyGlobal(module, type), new PyTuple(message)), protocol: 5);

    public static byte[] ValueError(string message) => Pickle("builtins", "ValueError", message);

    /// <summary>What Python's unpickler raises for bytes that are not a valid pickle (<c>pickle.UnpicklingError</c>).</summary>
    public static byte[] Unpickling(string message) => Pickle("_pickle", "UnpicklingError", message);

    public static byte[] GetTimeout(string message) => Pickle("ray.exceptions", "GetTimeoutError", message);
}

/// <summary>A task submission the server refuses; the pickled error goes into the ticket.</summary>
internal sealed class TicketException(byte[] errorPickle) : Exception("ticket error")
{
    public byte[] ErrorPickle { get; } = errorPickle;
}

/// <summary>Ticket helpers.</summary>
internal static class Ticket
{
    public static ClientTaskTicket Error(byte[] pickle) => new() { Valid = false, Error = ByteString.CopyFrom(pickle) };
}

/// <summary>A client broke the Datapath protocol; Ray fails the stream with FAILED_PRECONDITION and drops the session.</summary>
internal sealed class DatapathProtocolException(string message) : Exception(message);
