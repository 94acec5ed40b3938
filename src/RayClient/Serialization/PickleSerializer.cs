namespace RayClient.Serialization;

/// <summary>
/// Python's pickle format with RayClient's value mapping: the codec the session uses for task
/// arguments, puts and gets, for pickles that travel another way (a file Python wrote with
/// <c>pickle.dump</c>, a value read from Ray's KV store, a job's output). Values are the ones
/// <see cref="PyConvert"/> converts: <see cref="PyTuple"/>, <see cref="PyObject"/>, <see cref="PyGlobal"/>,
/// <see cref="PyReduce"/>, lists, dicts, numbers, strings and bytes.
/// </summary>
public static class PickleSerializer
{
    /// <summary>Pickles <paramref name="value"/> as the session pickles a task argument.</summary>
    /// <param name="value">A .NET value with a Python counterpart.</param>
    /// <param name="protocol">The pickle protocol, 4 or 5 (Python 3.8 and later read 5). Default 5.</param>
    /// <exception cref="RaySerializationException">The value contains something that has no Python counterpart, or is nested too deeply (a cycle).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="protocol"/> is not 4 or 5.</exception>
    public static byte[] Serialize(object? value, int protocol = 5)
    {
        if (protocol is not (4 or 5))
        {
            throw new ArgumentOutOfRangeException(nameof(protocol), protocol, "The pickle protocol must be 4 or 5.");
        }

        return PickleWriter.SerializeToArray(value, new PickleWriterOptions { Protocol = protocol });
    }

    /// <summary>Unpickles <paramref name="pickle"/> into the values <see cref="PyConvert"/> takes.</summary>
    /// <param name="pickle">A complete pickle.</param>
    /// <param name="resolver">Turns Ray's persistent ids into objects; without one, the <see cref="PickleStub"/>s themselves are returned.</param>
    /// <exception cref="RaySerializationException">The data is not a valid pickle, or holds something this codec does not read.</exception>
    public static object? Deserialize(ReadOnlyMemory<byte> pickle, IPickleStubResolver? resolver = null) =>
        PickleReader.Read(pickle, resolver);

    /// <summary>Unpickles <paramref name="pickle"/> and converts the value to <typeparamref name="T"/> (see <see cref="PyConvert.To{T}(object?)"/>).</summary>
    /// <param name="pickle">A complete pickle.</param>
    /// <exception cref="RaySerializationException">The data is not a valid pickle, or the value does not convert to <typeparamref name="T"/>.</exception>
    public static T? Deserialize<T>(ReadOnlyMemory<byte> pickle) =>
        PyConvert.To<T>(PickleReader.Read(pickle));
}
