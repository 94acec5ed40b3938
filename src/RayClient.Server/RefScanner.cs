using System.Collections;
using RayClient.Serialization;
using RayClient.Server.Storage;

namespace RayClient.Server;

/// <summary>
/// Finds the object refs (PickleStub persistent ids) inside a client pickle: every one is held
/// while the value or task lives, and refs passed directly as task arguments are dependencies
/// whose values the task receives (Ray semantics: nested refs stay refs).
/// </summary>
internal static class RefScanner
{
    private static readonly byte[] Marker = "PickleStub"u8.ToArray();

    public static List<StoredObject> FindHeld(ClientSession session, ReadOnlyMemory<byte> pickle, out List<StoredObject> topLevel)
    {
        topLevel = [];
        if (pickle.Span.IndexOf(Marker) < 0)
        {
            return []; // no persistent ids at all: the common case, no parsing
        }

        var recorder = new Recorder();
        object? value;
        try
        {
            value = PickleSerializer.Deserialize(pickle, recorder);
        }
        catch (RaySerializationException ex)
        {
            // Client bytes that do not unpickle: an answer for that request (as Ray's server
            // answers a failed loads_from_client), never a failed Datapath.
            throw new TicketException(ServerErrors.Unpickling($"The value could not be unpickled: {ex.Message}"));
        }

        var held = new List<StoredObject>(recorder.Stubs.Count);
        try
        {
            foreach (var stub in recorder.Stubs)
            {
                if (stub.Stub.Type != "Object")
                {
                    continue;
                }

                if (!session.TryGetObject(new RayId(stub.Stub.RefId), out var entry))
                {
                    throw new TicketException(ServerErrors.ValueError(
                        $"ClientObjectRef {Convert.ToHexStringLower(stub.Stub.RefId)} is not found for client {session.ClientId}: it was released or belongs to another session."));
                }

                entry.AddReference();
                held.Add(entry);
                stub.Entry = entry;
            }
        }
        catch
        {
            foreach (var entry in held)
            {
                entry.RemoveReference();
            }

            throw;
        }

        if (value is PyTuple { Count: 2 } call)
        {
            if (call[0] is IEnumerable args and not string)
            {
                foreach (var arg in args)
                {
                    if (arg is StubMarker { Entry: { } entry })
                    {
                        topLevel.Add(entry);
                    }
                }
            }

            if (call[1] is IDictionary kwargs)
            {
                foreach (var arg in kwargs.Values)
                {
                    if (arg is StubMarker { Entry: { } entry })
                    {
                        topLevel.Add(entry);
                    }
                }
            }
        }

        return held;
    }

    private sealed class StubMarker(PickleStub stub)
    {
        public PickleStub Stub { get; } = stub;

        public StoredObject? Entry { get; set; }
    }

    private sealed class Recorder : IPickleStubResolver
    {
        public List<StubMarker> Stubs { get; } = [];

        public object? Resolve(PickleStub stub)
        {
            var marker = new StubMarker(stub);
            Stubs.Add(marker);
            return marker;
        }
    }
}
