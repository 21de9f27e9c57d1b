// attention: look inside a trained model. Runs one sentence through a translate or lm checkpoint
// with attention recording on, backpropagates the loss, and writes for every layer and head the
// attention weights and the gradient of the loss with respect to them:
//
//   <out>/attention.h5        weights and gradients, one group per attention module (h5py/h5dump)
//   <out>/heatmaps/*.png      one heatmap per layer and head (weights; *.grad.png: |gradient|)
//   <out>/attention.html      one self-contained page: click a token to see where each head looks
//
//   attention -c runs/translate/best.h5 --src "Ich habe keine Zeit." [--tgt "I have no time."]
//   attention -c runs/lm/best.h5 --text "And God said"
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <heed.h>
#include "data/tokenizer.h"
#include "examples/common/device.h"
#include "examples/common/image.h"
#include "examples/common/run_config.h"
#include "examples/common/seq2seq_config.h"
#include "io/checkpoint.h"
#include "io/hdf5.h"

using namespace heed;
namespace fs = std::filesystem;
using examples::Config;

namespace {

struct Layer {
  std::string name, queries, keys;  // queries/keys: which token list ("source", "target", "text")
  Tensor weights, grad;             // [H, T, S]
};

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c == '\n') out += "\\n";
    else if (c < 0x20) out += fmt::format("\\u{:04x}", c);
    else if (c == '<') out += "\\u003c";  // never close the page's <script> early
    else out += static_cast<char>(c);
  }
  return out + "\"";
}

std::string json_tokens(const std::vector<std::string>& t) {
  std::string out = "[";
  for (size_t i = 0; i < t.size(); ++i) out += (i ? "," : "") + json_string(t[i]);
  return out + "]";
}

std::string json_matrix(const Tensor& t) {  // [H, T, S] -> nested lists, 4 significant digits
  std::vector<float> v = t.contiguous().to(kCPU).to(DType::Float32).to_vector<float>();
  const int64_t H = t.size(0), T = t.size(1), S = t.size(2);
  std::string out = "[";
  for (int64_t h = 0; h < H; ++h) {
    out += h ? ",[" : "[";
    for (int64_t i = 0; i < T; ++i) {
      out += i ? ",[" : "[";
      for (int64_t j = 0; j < S; ++j) out += fmt::format("{}{:.4g}", j ? "," : "", v[(h * T + i) * S + j]);
      out += "]";
    }
    out += "]";
  }
  return out + "]";
}

std::vector<std::string> token_strings(const data::Tokenizer& tok, const std::vector<int64_t>& ids) {
  std::vector<std::string> out;
  for (int64_t id : ids) out.push_back(tok.token(id));
  return out;
}

void write_html(const std::string& path, const std::string& title, const std::map<std::string, std::vector<std::string>>& tokens,
                const std::vector<Layer>& layers, double loss) {
  std::string data = "{\"title\":" + json_string(title) + fmt::format(",\"loss\":{:.6g}", loss) + ",\"tokens\":{";
  bool first = true;
  for (const auto& [k, v] : tokens) data += (first ? "" : ",") + json_string(k) + ":" + json_tokens(v), first = false;
  data += "},\"layers\":[";
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    data += (i ? "," : "") + fmt::format("{{\"name\":{},\"queries\":{},\"keys\":{},\"weights\":{},\"grad\":{}}}",
                                         json_string(l.name), json_string(l.queries), json_string(l.keys),
                                         json_matrix(l.weights), json_matrix(l.grad));
  }
  data += "]}";
  std::ofstream out(path);
  HEED_CHECK(out.good(), "cannot write {}", path);
  out << R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>heed attention</title>
<style>
body{font-family:sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em} .muted{color:#777;font-size:.9em}
#layers button,#mode button{margin:2px;padding:3px 8px;border:1px solid #999;background:#f6f6f6;cursor:pointer;border-radius:3px}
#layers button.on,#mode button.on{background:#2b5fb4;color:#fff;border-color:#2b5fb4}
.tok{display:inline-block;margin:2px;padding:3px 6px;border:1px solid #bbb;border-radius:3px;cursor:pointer;white-space:pre}
.tok.sel{outline:2px solid #d62728}
.head{margin:10px 0}.head .lbl{display:inline-block;width:70px;color:#555}
.key{display:inline-block;margin:1px;padding:3px 6px;border-radius:3px;white-space:pre}
canvas{border:1px solid #ccc;margin:4px 8px 4px 0;image-rendering:pixelated}
</style></head><body>
<h1 id="title"></h1>
<p class="muted">Pick a layer, then click a query token: each head shows how much that token attends to every key
(darker = more). "gradient" shows d loss / d weight instead (red = raising the weight raises the loss, blue = lowers it).</p>
<div id="layers"></div><div id="mode"></div>
<h3>queries <span class="muted" id="qname"></span></h3><div id="queries"></div>
<div id="heads"></div>
<h3>all heads of this layer</h3><div id="maps"></div>
<script id="data" type="application/json">)HTML"
      << data << R"HTML(</script>
<script>
const D=JSON.parse(document.getElementById('data').textContent);
let L=0,Q=0,mode='weights';
document.getElementById('title').textContent=D.title+'  (loss '+D.loss.toFixed(4)+')';
function colour(v,signed){if(signed){const a=Math.min(1,Math.abs(v));return v>=0?`rgba(214,39,40,${a})`:`rgba(31,119,180,${a})`;}
 return `rgba(43,95,180,${Math.min(1,Math.max(0,v))})`;}
function scale(m){if(mode=='weights')return 1;let x=1e-12;for(const h of m)for(const r of h)for(const v of r)x=Math.max(x,Math.abs(v));return x;}
function buttons(id,items,cur,fn){const el=document.getElementById(id);el.innerHTML='';items.forEach((t,i)=>{const b=document.createElement('button');
 b.textContent=t;if(i===cur||t===cur)b.className='on';b.onclick=()=>fn(i,t);el.appendChild(b);});}
function draw(){
 const layer=D.layers[L],m=layer[mode],s=scale(m),qt=D.tokens[layer.queries],kt=D.tokens[layer.keys];
 buttons('layers',D.layers.map(l=>l.name),L,i=>{L=i;Q=0;draw();});
 buttons('mode',['weights','grad'],mode,(i,t)=>{mode=t;draw();});
 document.getElementById('qname').textContent='('+layer.queries+' tokens; keys: '+layer.keys+')';
 const qd=document.getElementById('queries');qd.innerHTML='';
 qt.forEach((t,i)=>{const e=document.createElement('span');e.className='tok'+(i===Q?' sel':'');e.textContent=t;e.onclick=()=>{Q=i;draw();};qd.appendChild(e);});
 const hd=document.getElementById('heads');hd.innerHTML='';
 m.forEach((head,h)=>{const row=document.createElement('div');row.className='head';row.innerHTML=`<span class="lbl">head ${h}</span>`;
  kt.forEach((t,j)=>{const v=head[Q][j],e=document.createElement('span');e.className='key';e.textContent=t;
   e.style.background=colour(v/s,mode!='weights');e.title=`${t}: ${v.toPrecision(4)}`;if(Math.abs(v/s)>0.55)e.style.color='#fff';row.appendChild(e);});
  hd.appendChild(row);});
 const md=document.getElementById('maps');md.innerHTML='';
 const k=Math.max(8,Math.min(24,Math.floor(260/Math.max(qt.length,kt.length))));
 m.forEach((head,h)=>{const c=document.createElement('canvas');c.width=kt.length*k;c.height=qt.length*k;c.title='head '+h;
  const g=c.getContext('2d');head.forEach((r,i)=>r.forEach((v,j)=>{g.fillStyle=colour(v/s,mode!='weights');g.fillRect(j*k,i*k,k,k);}));
  g.strokeStyle='#d62728';g.strokeRect(0,Q*k+.5,c.width,k-1);md.appendChild(c);});
}
draw();
</script></body></html>
)HTML";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"heed attention: every layer's and head's attention weights, and the gradient of the loss "
               "with respect to them, for one sentence"};
  std::string checkpoint, src, tgt, text, out = "runs/attention", device_name = "cpu";
  app.add_option("-c,--checkpoint", checkpoint, "a checkpoint of 'translate train' or 'lm train'")->required()->check(CLI::ExistingFile);
  app.add_option("--src", src, "translate: the source sentence");
  app.add_option("--tgt", tgt, "translate: its translation (default: the model's greedy translation)");
  app.add_option("--text", text, "lm: the text to look at");
  app.add_option("--out", out, "output folder")->capture_default_str();
  app.add_option("--device", device_name, "cpu or cuda[:index]")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    const Device device = examples::device_from_flag(device_name);
    io::Checkpoint ckpt = io::load_checkpoint(checkpoint);
    Config config(ckpt.config);
    const std::string program = config.str("program");
    std::map<std::string, std::vector<std::string>> tokens;
    std::vector<Layer> layers;
    Tensor loss;
    std::string title;
    auto collect = [&](nn::Module& model, const std::function<std::pair<std::string, std::string>(const std::string&)>& sides) {
      for (auto& r : nn::recorded_attention(model)) {
        auto [q, k] = sides(r.name);
        layers.push_back({r.name, q, k, r.weights.select(0, 0).detach(),
                          r.grad.defined() ? r.grad.select(0, 0) : zeros_like(r.weights.select(0, 0))});
      }
    };
    if (program == "translate") {
      HEED_CHECK(!src.empty(), "a translate checkpoint needs --src SENTENCE");
      HEED_CHECK(text.empty(), "--text is for lm checkpoints; use --src (and --tgt) with a translate checkpoint");
      auto src_tok = data::deserialize_tokenizer(config.str("src_tokenizer_kind"), ckpt.texts.at("src_tokenizer"));
      auto tgt_tok = data::deserialize_tokenizer(config.str("tgt_tokenizer_kind"), ckpt.texts.at("tgt_tokenizer"));
      nn::Seq2SeqTransformer model(examples::seq2seq_options(config));
      io::restore_for_evaluation(ckpt, model);
      model.to(device);
      model.eval();
      std::vector<int64_t> src_ids = src_tok->encode(src);
      src_ids.push_back(data::kEos);
      Tensor s = from_vector<int64_t>(src_ids, {1, static_cast<int64_t>(src_ids.size())}).to(device);
      std::vector<int64_t> tgt_ids;
      if (tgt.empty()) {
        tgt_ids = nn::greedy_decode(model, s, Tensor(), examples::translation_decode_options(config.integer("max_len")))[0];
        tgt = tgt_tok->decode(tgt_ids);
        fmt::print("translation (greedy): {}\n", tgt);
      } else {
        tgt_ids = tgt_tok->encode(tgt);
      }
      std::vector<int64_t> tin{data::kBos}, tout = tgt_ids;
      tin.insert(tin.end(), tgt_ids.begin(), tgt_ids.end());
      tout.push_back(data::kEos);
      nn::set_attention_recording(model, true);
      Tensor logits = model.forward(s, from_vector<int64_t>(tin, {1, static_cast<int64_t>(tin.size())}).to(device));
      loss = nn::cross_entropy(logits, from_vector<int64_t>(tout, {1, static_cast<int64_t>(tout.size())}).to(device));
      loss.backward();
      tokens["source"] = token_strings(*src_tok, src_ids);
      tokens["target"] = token_strings(*tgt_tok, tin);
      collect(model, [](const std::string& name) -> std::pair<std::string, std::string> {
        if (name.rfind("encoder", 0) == 0) return {"source", "source"};
        if (name.find("cross_attn") != std::string::npos) return {"target", "source"};
        return {"target", "target"};
      });
      title = src + "  ->  " + tgt;
    } else if (program == "lm") {
      HEED_CHECK(!text.empty(), "an lm checkpoint needs --text TEXT");
      auto tok = data::deserialize_tokenizer(config.str("tokenizer_kind"), ckpt.texts.at("tokenizer"));
      nn::GPTOptions o{config.integer("vocab"), config.integer("block")};
      o.d_model = config.integer("d_model"), o.nhead = config.integer("nhead"), o.num_layers = config.integer("layers");
      nn::GPT model(o);
      io::restore_for_evaluation(ckpt, model);
      model.to(device);
      model.eval();
      std::vector<int64_t> ids = tok->encode(text);
      HEED_CHECK(ids.size() >= 2, "--text must be at least two tokens long");
      if (static_cast<int64_t>(ids.size()) > o.block_size + 1) ids.resize(o.block_size + 1);
      std::vector<int64_t> x(ids.begin(), ids.end() - 1), y(ids.begin() + 1, ids.end());
      nn::set_attention_recording(model, true);
      Tensor logits = model.forward(from_vector<int64_t>(x, {1, static_cast<int64_t>(x.size())}).to(device));
      loss = nn::cross_entropy(logits, from_vector<int64_t>(y, {1, static_cast<int64_t>(y.size())}).to(device));
      loss.backward();
      tokens["text"] = token_strings(*tok, x);
      collect(model, [](const std::string&) { return std::pair<std::string, std::string>{"text", "text"}; });
      title = text;
    } else {
      HEED_FAIL("{}: unknown program \"{}\" in the checkpoint's configuration", checkpoint, program);
    }

    fs::create_directories(fs::path(out) / "heatmaps");
    {
      io::h5::File f = io::h5::File::create((fs::path(out) / "attention.h5").string());
      f.write_attr_string("/", "checkpoint", checkpoint);
      f.write_attr_string("/", "title", title);
      f.write_attr_double("/", "loss", loss.item<double>());
      for (const auto& [name, list] : tokens) {
        std::string joined;
        for (size_t i = 0; i < list.size(); ++i) joined += (i ? "\x1f" : "") + list[i];
        f.write_attr_string("/", "tokens_" + name, joined);
      }
      for (const Layer& l : layers) {
        f.write(l.name + "/weights", l.weights.to(kCPU).contiguous());
        f.write(l.name + "/grad", l.grad.to(kCPU).contiguous());
        f.write_attr_string(l.name, "queries", l.queries);
        f.write_attr_string(l.name, "keys", l.keys);
      }
      f.flush();
    }
    for (const Layer& l : layers) {
      const int64_t H = l.weights.size(0), T = l.weights.size(1), S = l.weights.size(2);
      for (int64_t h = 0; h < H; ++h) {
        auto w = l.weights.select(0, h).contiguous().to(kCPU).to_vector<float>();
        examples::write_heatmap_png((fs::path(out) / "heatmaps" / fmt::format("{}.head{}.png", l.name, h)).string(), w, T, S);
        auto g = abs(l.grad.select(0, h)).contiguous().to(kCPU).to_vector<float>();
        const float top = std::max(1e-12f, *std::max_element(g.begin(), g.end()));
        for (float& v : g) v /= top;
        examples::write_heatmap_png((fs::path(out) / "heatmaps" / fmt::format("{}.head{}.grad.png", l.name, h)).string(), g, T, S);
      }
    }
    write_html((fs::path(out) / "attention.html").string(), title, tokens, layers, loss.item<double>());
    fmt::print("loss {:.4f}; {} attention modules: {}/attention.h5, {}/heatmaps/, {}/attention.html\n",
               loss.item<double>(), layers.size(), out, out, out);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "attention: error: {}\n", e.what());
    return 1;
  }
}
